#!/usr/bin/env bash
# The benchmark report (as root): the bare AF_XDP forwarder, aftrd with one worker and
# with two, both directions, 64- and 512-byte frames, highest rate within the loss
# tolerance, latency; then engine-bench, failover-bench and hostile-bench. Prints the
# table and writes bench/results/<date>.md and .svg (bench/src/bin/bench-report.rs).
# Options go to bench-report: --sizes 64,512 --trial S --rounds N --loss PCT --flows N --b4s N
#   --duts bare,aftrd1,aftrd2 --skip-engine --skip-ha --skip-hostile --kills N --out DIR
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --workspace --bins
exec target/release/bench-report "$@"
