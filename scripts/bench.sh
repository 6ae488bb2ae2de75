#!/usr/bin/env bash
# The main job until aftrd carries traffic: the in-memory engine benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo run --release -p bench --bin engine-bench -- "$@"
