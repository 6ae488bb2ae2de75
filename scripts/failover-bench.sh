#!/usr/bin/env bash
# Hot-backup figures (as root): replication rate and bulk sync on loopback, then faults of
# the active board between two aftrd on shared segments, a row per kind of fault
# (bench/src/bin/failover-bench.rs). Options go to failover-bench:
#   --faults kill9,sigstop,inet-down,softwire-down,switchover,ha-cut (all)  --trials N (20)
#   --heartbeat MS --dead-count N (the configuration's defaults)  --records N  --bulk N
#   --kills N (the same as --faults kill9 --trials N)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --workspace --bins
exec target/release/failover-bench "$@"
