#!/usr/bin/env bash
# Installs the Debian packages berth needs to build and to run its whole test suite.
# Idempotent: packages already present are skipped, and apt is only touched when something
# is missing. Used by `.ci/run` (through `scripts/test.sh`) and by developers on a fresh machine.
set -euo pipefail

# Usage: install-deps.sh [build|all]   (default: all)
#   build: what compiling berth needs; all: also every tool the test suite and benchmarks drive.
MODE="${1:-all}"
# binutils: nm and c++filt for the release link's function order (crates/berth/link-order.sh).
BUILD_PKGS=(protobuf-compiler libprotobuf-dev libseccomp-dev pkg-config gcc binutils)
TEST_PKGS=(
  busybox-static runc crun skopeo umoci docker-registry etcd-server etcd-client
  nftables iproute2 hyperfine wrk conmon podman buildah util-linux procps curl openssl tar nginx
)

missing=()
wanted=("${BUILD_PKGS[@]}")
[ "$MODE" = build ] || wanted+=("${TEST_PKGS[@]}")
for p in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages (${missing[*]}) and not root; install them or run as root" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Debian starts some daemons on install (docker-registry, etcd, nginx on the host's port 80);
# berth's tests and benchmarks run their own instances. policy-rc.d forbids starting any.
policy=/usr/sbin/policy-rc.d
had_policy=0
[ -e "$policy" ] && had_policy=1
if [ "$had_policy" -eq 0 ]; then printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy"; fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || { [ "$had_policy" -eq 0 ] && rm -f "$policy"; exit 1; }
[ "$had_policy" -eq 0 ] && rm -f "$policy"
# Stop the system instances in case a policy was already in place and let them start (only
# the services' own init scripts: test processes of the same name are left alone).
for svc in docker-registry etcd nginx; do
  if command -v service >/dev/null 2>&1; then service "$svc" stop >/dev/null 2>&1 || true; fi
done
