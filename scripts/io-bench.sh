#!/usr/bin/env bash
# Packet I/O benchmark over veth (as root): aftrd with one worker against the bare AF_XDP
# forwarder, same generator and sink, side by side in one run (bench/src/bin/io-bench.rs).
# Options go to io-bench: --rounds N --seconds S --flows F --poll busy|blocking
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --workspace --bins
exec target/release/io-bench "$@"
