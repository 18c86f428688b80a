#!/bin/sh
# Function ordering for the release `berth` executable (see build.rs and docs/adr/0014).
#
# As gcc's `-wrapper` (build.rs adds `-wrapper /bin/sh,link-order.sh,HOT,WORKDIR` to the
# link of the release binary):
#
#     link-order.sh HOT WORKDIR /usr/lib/gcc/.../collect2 ARGS...
#
# links once as asked but into WORKDIR/first-pass (without debug info), reads the function
# symbols of that output, keeps those whose key hash (below) is listed in HOT, and links
# again as asked with `--symbol-ordering-file` listing them in the order of HOT, so that lld
# puts them first in `.text`, next to each other; the list stays in WORKDIR. Any other
# program gcc runs, a linker other than lld, or a failure on the way: the link runs
# unchanged.
#
#     link-order.sh --keys ELF
#
# prints `address size symbol hash key` (tab-separated, hex) for each function symbol of
# ELF; scripts/hot-functions.sh uses it, so that the list and the link agree on keys.
#
# A key is the demangled name without what changes from one build to the next: the crate
# disambiguators of v0 names (`core[c1f1a4ba060b9bfa]`) and the `::h<hash>` of legacy
# names. Type paths inside a name are shortened to their last segment
# (`drop_in_place::<Option<Pod>>`, not `...::<core::option::Option<k8s_openapi::...::Pod>>`),
# the name is cut at 160 characters, and ` @crate` names the crate that instantiated a
# generic function (each crate that uses one has its own copy). Two functions that share a
# key are both ordered. HOT holds a 31-bit hash of each key (8 hex digits), which keeps it
# at ~9 bytes a function. Needs nm and c++filt (binutils), awk, sed, sort, paste and cut.
set -u

keys() {
    nm --defined-only -S "$1" |
        awk 'NF == 4 && $3 ~ /^[tTwW]$/ { print $1 "\t" $2 "\t" $4 }
             NF == 3 && $2 ~ /^[tTwW]$/ { print $1 "\t0\t" $3 }' >"$2.syms" || return 1
    [ -s "$2.syms" ] || return 1
    cut -f3 "$2.syms" | c++filt | sed -E \
        -e 's/\[[0-9a-f]{1,16}\]//g' \
        -e 's/::h[0-9a-f]{16}$//' \
        -e 's/([<(&,*;+= [])([A-Za-z_][A-Za-z0-9_]*::)+([A-Za-z_])/\1\3/g' |
        paste "$2.syms" - | LC_ALL=C awk -F '\t' -v OFS='\t' "$KEYS_AWK"
}

# Adds the instantiating crate of a v0 name (the crate that generated this copy of a generic
# function; the demangler does not print it) to the key, and the key's hash.
KEYS_AWK='
BEGIN {
    B62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    for (i = 1; i < 256; i++) ord[sprintf("%c", i)] = i
}
# The name of the crate root `C[s<disambiguator>_]<len>[_]<name>` that s starts with.
function root(s,   t, n) {
    if (!match(s, /^C(s[0-9A-Za-z]*_)?[0-9]+/)) return ""
    t = substr(s, 1, RLENGTH); s = substr(s, RLENGTH + 1)
    match(t, /[0-9]+$/); n = substr(t, RSTART) + 0
    if (substr(s, 1, 1) == "_") s = substr(s, 2)
    return length(s) >= n ? substr(s, 1, n) : ""
}
function inst(m,   L, n, p, d, q, v, i) {
    sub(/\.llvm\.[0-9]+$/, "", m)
    if (substr(m, 1, 2) != "_R") return ""
    L = length(m)
    if (match(m, /B[0-9A-Za-z]*_$/)) {
        v = 0
        for (i = RSTART + 1; i < L; i++) v = v * 62 + index(B62, substr(m, i, 1)) - 1
        if (RLENGTH > 2) v++
        return root(substr(m, 3 + v))
    }
    for (n = 1; n <= 64 && n < L - 3; n++) {
        p = substr(m, 1, L - n); d = n ""
        if (substr(p, length(p)) == "_") p = substr(p, 1, length(p) - 1)
        if (substr(p, length(p) - length(d) + 1) != d) continue
        q = substr(p, 1, length(p) - length(d))
        if (q ~ /C$/ || q ~ /Cs[0-9A-Za-z]*_$/) return substr(m, L - n + 1)
    }
    return ""
}
{
    key = substr($4, 1, 160)
    c = inst($3)
    if (c != "") key = key " @" c
    h = 0
    for (i = length(key); i > 0; i--) h = (h * 131 + ord[substr(key, i, 1)]) % 2147483647
    print $1, $2, $3, sprintf("%08x", h), key
}'

if [ "${1:-}" = --keys ]; then
    tmp=$(mktemp -d) || exit 1
    keys "$2" "$tmp/k"
    status=$?
    rm -rf "$tmp"
    exit $status
fi

hot=$1 work=$2
shift 2
case "${1##*/}" in
collect2 | ld | ld.* | *-ld) ;;
*) exec "$@" ;;
esac
lld=
for a in "$@"; do
    case "$a" in
    -fuse-ld=lld) lld=1 ;;
    @*) grep -q -e '-fuse-ld=lld' "${a#@}" 2>/dev/null && lld=1 ;;
    esac
done
[ -n "$lld" ] && [ -r "$hot" ] && mkdir -p "$work" || exec "$@"

order="$work/symbol-order.txt"
rm -f "$order" "$work/first-pass"
# lld takes the last -o: the first pass leaves the real output alone.
if "$@" --strip-debug -o "$work/first-pass" >"$work/first-pass.log" 2>&1 &&
    keys "$work/first-pass" "$work/first-pass" >"$work/keys.tsv" &&
    awk -F '\t' 'NR == FNR { if ($1 !~ /^#/ && $1 != "" && !($1 in rank)) rank[$1] = FNR; next }
                 ($4 in rank) { print rank[$4] "\t" $3 }' "$hot" "$work/keys.tsv" |
    sort -n -s -k1,1 | cut -f2 >"$order" &&
    [ -s "$order" ]; then
    rm -f "$work/first-pass" "$work/first-pass.syms" "$work/keys.tsv"
    exec "$@" --symbol-ordering-file="$order" --no-warn-symbol-ordering
fi
rm -f "$work/first-pass" "$work/first-pass.syms" "$work/keys.tsv" "$order"
exec "$@"
