#!/usr/bin/env bash
# aftrd under attack (as root): a steady legitimate load (UDP flows from many B4s and their
# replies) alone and beside each attack, a fragment flood from a B4 and from the Internet,
# a new-session flood from one subscriber, forged Packet Too Big, malformed frames from
# either side, at line rate and paced, in alternating trials; prints the tables, aftrd's
# drop counters and a summary line (bench/src/bin/hostile-bench.rs, about 4 minutes).
# Options go to hostile-bench: --attacks a,b --rounds N --trial S --flows N --b4s N
#   --load F | --legit-rate PPS --paced N%|PPS|none --out DIR (writes DIR/<date>-hostile.md)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --workspace --bins
exec target/release/hostile-bench "$@"
