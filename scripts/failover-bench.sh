#!/usr/bin/env bash
# Hot-backup figures (as root): replication rate and bulk sync on loopback, then kills of
# the active board between two aftrd on shared segments (bench/src/bin/failover-bench.rs).
# Options go to failover-bench: --kills N --records N --bulk N
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --workspace --bins
exec target/release/failover-bench "$@"
