#!/usr/bin/env bash
# The whole test suite: installs what the tests need (Debian packages), builds berth once
# (debug), checks the dependency policy, formatting and lints, then runs every test tier
# (unit, conformance, integration, e2e) with cargo-nextest. `.ci/run` calls this script.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh all

echo "== dependency policy: no aws-lc-rs in the tree (ring only)"
if cargo tree --workspace -i aws-lc-rs >/dev/null 2>&1 || cargo tree --workspace -i aws-lc-sys >/dev/null 2>&1; then
  echo "aws-lc-rs entered the dependency tree:" >&2
  cargo tree --workspace -i aws-lc-rs >&2 || true
  exit 1
fi

echo "== format"
cargo fmt --all -- --check

echo "== build"
cargo build --workspace --all-targets --locked

echo "== lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== tests"
export BERTH_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/berth"
cargo nextest run --workspace --locked --no-fail-fast "$@"
