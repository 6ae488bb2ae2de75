#!/usr/bin/env bash
# A profile of aftrd's worker under load (as root): bench-report finds the highest rate
# of aftrd with one worker, softwire -> IPv4, 64-byte frames, then `perf record`s aftrd
# (DWARF call graphs, 997 Hz) through one trial at that rate; the samples of the
# worker's thread become a flame graph, bench/results/<date>-worker-flame.svg, and the
# top of the profile is printed (decision 0021 names the costs found).
# Options: --trial S (seconds of the trial profiled, at most 5; 3 by default),
#   --sizes N (64), --out DIR (bench/results).
set -euo pipefail
cd "$(dirname "$0")/.."
trial=3 size=64 out=bench/results
while (($#)); do
    case "$1" in
        --trial) trial="$2"; shift 2 ;;
        --sizes) size="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        *) echo "profile-worker: unknown option $1" >&2; exit 2 ;;
    esac
done
bash scripts/setup.sh
# The flame graph tools (inferno, pure Rust) under target/, at a pinned version.
inferno="${INFERNO_ROOT:-target/inferno}"
if [ ! -x "$inferno/bin/inferno-flamegraph" ]; then
    cargo install --quiet --locked inferno --version 0.12.8 --no-default-features \
        --features cli,multithreaded --root "$inferno"
fi
cargo build --release --workspace --bins
work=$(mktemp -d /tmp/profile-worker.XXXXXX)
trap 'rm -rf "$work"' EXIT
target/release/bench-report --duts aftrd1 --sizes "$size" --trial "$trial" --skip-engine --skip-ha \
    --skip-hostile --profile "$work/perf.data" --out "$work/report"
# Only the worker's thread (aftrd names it after its slot and index: "aftr-slot1-w0").
perf script -i "$work/perf.data" --comms aftr-slot1-w0 2>/dev/null >"$work/perf.txt"
[ -s "$work/perf.txt" ] || { echo "profile-worker: perf recorded no sample of the worker" >&2; exit 1; }
"$inferno/bin/inferno-collapse-perf" "$work/perf.txt" >"$work/folded"
mkdir -p "$out"
svg="$out/$(date +%F)-worker-flame.svg"
"$inferno/bin/inferno-flamegraph" --title "aftrd worker, 1 worker, softwire -> IPv4, $size B, at the rate found" \
    "$work/folded" >"$svg"
echo "flame graph: $svg ($(wc -l <"$work/perf.txt") lines of samples)"
echo "top of the profile (self time, the worker's thread):"
# (awk reads to the end: `head` would stop perf with SIGPIPE, a failure under pipefail.)
perf report -i "$work/perf.data" --comms aftr-slot1-w0 --no-children --sort symbol --stdio -g none 2>/dev/null \
    | awk '/^ +[0-9]/ && n++ < 25'
