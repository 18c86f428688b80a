#!/usr/bin/env bash
# Regenerates crates/berth/hot-functions.txt: the functions an idle node agent executes,
# which the release link places first in `.text` (crates/berth/link-order.sh; why:
# docs/adr/0014-function-order-for-agent-rss.md). Run as root after a release build:
#
#   cargo build --release -p berth -p berth-bench --bin berth --bin podstart
#   sudo scripts/hot-functions.sh [target/release]      # then rebuild and measure:
#   ./target/release/podstart --berth target/release/berth --idle-only
#
# The agent must run from a page cache that holds only the pages it faulted itself, or the
# kernel's fault-around (64 KiB windows over whatever read-ahead brought in) hides which
# code it uses. So: a copy of the executable on a fresh loop-mounted ext4 whose read-ahead
# is 0, run as the agent only (podstart gets a `--berth` that execs the copy for `agent`
# and the original for everything else), held idle by `podstart --idle-only --hold`. Every
# function that overlaps a resident page of the copy's `.text` is hot; the list holds the
# hashes of their keys (link-order.sh --keys) in the order of the keys, so that a
# regeneration shows as a small diff. The build it reads may be ordered already (then fewer
# cold functions share a page with hot ones). Run it with the machine otherwise idle: it
# takes ~1 minute. Needs root, losetup, mkfs.ext4, python3 and binutils.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(realpath "${1:-${CARGO_TARGET_DIR:-target}/release}")
out=crates/berth/hot-functions.txt
[ "$(id -u)" = 0 ] || { echo "needs root (loop device, /proc/PID/pagemap)" >&2; exit 1; }
[ -x "$dir/berth" ] && [ -x "$dir/podstart" ] || { echo "build berth and podstart (--release) first" >&2; exit 1; }

tmp=$(mktemp -d /var/tmp/hot-functions.XXXXXX)
loop=
cleanup() {
    mountpoint -q "$tmp/mnt" && umount "$tmp/mnt"
    [ -n "$loop" ] && losetup -d "$loop"
    rm -rf "$tmp"
}
trap cleanup EXIT
size=$(( $(stat -c %s "$dir/berth") / 1048576 + 64 ))
truncate -s "${size}M" "$tmp/fs.img"
mkfs.ext4 -q -F "$tmp/fs.img"
loop=$(losetup --find --show "$tmp/fs.img")
echo 0 >"/sys/block/${loop#/dev/}/queue/read_ahead_kb"
mkdir "$tmp/mnt"
mount "$loop" "$tmp/mnt"
cp "$dir/berth" "$tmp/mnt/berth"
# Remount: the copy's pages leave the page cache.
umount "$tmp/mnt"
mount "$loop" "$tmp/mnt"
cat >"$tmp/berth" <<EOF
#!/bin/sh
[ "\$1" = agent ] && exec "$tmp/mnt/berth" "\$@"
exec "$dir/berth" "\$@"
EOF
chmod +x "$tmp/berth"

"$dir/podstart" --berth "$tmp/berth" --idle-only --hold 40 >"$tmp/podstart.log" 2>&1 &
podstart=$!
pid=
for _ in $(seq 1 90); do
    pid=$(sed -n 's/^agent pid \([0-9]*\): holding.*/\1/p' "$tmp/podstart.log")
    [ -n "$pid" ] && break
    kill -0 $podstart 2>/dev/null || break
    sleep 2
done
[ -n "$pid" ] || { cat "$tmp/podstart.log" >&2; exit 1; }
sleep 20
grep -E '^(VmRSS|RssAnon|RssFile)' "/proc/$pid/status"
# Resident pages of the copy, as offsets from its load base.
python3 - "$pid" "$tmp/mnt/berth" >"$tmp/pages.txt" <<'EOF'
import struct, sys
pid, exe = sys.argv[1], sys.argv[2]
maps = []
for line in open(f"/proc/{pid}/maps"):
    f = line.split()
    if len(f) >= 6 and f[5] == exe:
        a, b = (int(x, 16) for x in f[0].split("-"))
        maps.append((a, b, int(f[2], 16)))
base = min(a - off for a, b, off in maps)
pm = open(f"/proc/{pid}/pagemap", "rb")
for a, b, off in maps:
    pm.seek(a // 4096 * 8)
    data = pm.read((b - a) // 4096 * 8)
    for i in range(0, len(data), 8):
        e = struct.unpack_from("<Q", data, i)[0]
        if e >> 63 & 1:
            print((a - base) // 4096 + i // 8)
EOF
wait $podstart || true
grep "agent RSS" "$tmp/podstart.log" || true

sh crates/berth/link-order.sh --keys "$dir/berth" >"$tmp/keys.tsv"
python3 - "$tmp/pages.txt" "$tmp/keys.tsv" "$out" <<'EOF'
import collections, sys
pages = set(int(l) for l in open(sys.argv[1]))
hot, size_of_hash, hot_size = {}, collections.Counter(), 0
for line in open(sys.argv[2]):
    addr, size, _, h, key = line.rstrip("\n").split("\t")
    addr, size = int(addr, 16), int(size, 16)
    size_of_hash[h] += size
    if any(p in pages for p in range(addr // 4096, (addr + max(size, 1) - 1) // 4096 + 1)):
        hot[h] = key
        hot_size += size
with open(sys.argv[3], "w") as f:
    f.write("# The functions an idle node agent executes: the hashes of their keys, in the order of\n")
    f.write("# the keys (`sh crates/berth/link-order.sh --keys target/release/berth` prints both). The\n")
    f.write("# release link puts them first in .text, in this order. Made by scripts/hot-functions.sh.\n")
    for h in sorted(hot, key=lambda h: (hot[h], h)):
        f.write(h + "\n")
mb = 1 << 20
print(f"{len(pages)} resident pages of the executable; {len(hot)} hot keys, "
      f"{hot_size / mb:.1f} MB of functions on those pages, "
      f"{sum(size_of_hash[h] for h in hot) / mb:.1f} MB of functions with their keys")
EOF
echo "wrote $out"
