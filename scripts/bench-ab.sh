#!/usr/bin/env bash
# Before and after, side by side on one machine (as root): runs bench-report from two
# directories of release binaries (each with its bench-report, aftrd, aftrctl and
# xdp-forward), A, B, A, B, ..., and prints per figure of their summary lines the
# median of each and the ratio B / A. On a shared, noisy machine only such alternating
# runs compare (MACHINE-FACTS.md: +-30% from run to run).
# Usage: bench-ab.sh DIR_A DIR_B [ROUNDS] [bench-report options]
#   default options: --duts bare,aftrd1 --sizes 64 --trial 1 --skip-engine --skip-ha --skip-hostile
# Make a directory of the binaries now built:
#   mkdir -p /tmp/ab/B && cp target/release/{bench-report,aftrd,aftrctl,xdp-forward} /tmp/ab/B/
set -euo pipefail
a="${1:?usage: bench-ab.sh DIR_A DIR_B [ROUNDS] [bench-report options]}"
b="${2:?usage: bench-ab.sh DIR_A DIR_B [ROUNDS] [bench-report options]}"
rounds="${3:-3}"
shift $(($# < 3 ? $# : 3))
opts=("$@")
((${#opts[@]})) || opts=(--duts bare,aftrd1 --sizes 64 --trial 1 --skip-engine --skip-ha --skip-hostile)
for d in "$a" "$b"; do
    for p in bench-report aftrd aftrctl xdp-forward; do
        [ -x "$d/$p" ] || { echo "bench-ab: no $d/$p" >&2; exit 2; }
    done
done
work=$(mktemp -d /tmp/bench-ab.XXXXXX)
trap 'rm -rf "$work"' EXIT
for r in $(seq 1 "$rounds"); do
    for side in A B; do
        dir=$a
        [ "$side" = B ] && dir=$b
        echo "round $r, $side ($dir), load average $(cut -d' ' -f1 /proc/loadavg)" >&2
        if ! "$dir/bench-report" "${opts[@]}" --out "$work/out" >"$work/stdout" 2>"$work/stderr"; then
            tail -5 "$work/stderr" >&2
            echo "bench-ab: round $r, $side failed (above)" >&2
            exit 1
        fi
        line=$(grep '^summary:' "$work/stdout")
        echo "  $line" >&2
        echo "$side ${line#summary: }" >>"$work/summaries"
    done
done
python3 - "$work/summaries" <<'PY'
import statistics, sys
runs = {"A": [], "B": []}
for line in open(sys.argv[1]):
    side, *kv = line.split()
    runs[side].append(dict(p.split("=", 1) for p in kv))
keys = [k for k in runs["A"][0] if "/" not in runs["A"][0][k]]
print(f"{len(runs['A'])} alternating runs each; medians; B / A")
print(f"{'figure':32} {'A':>10} {'B':>10} {'B / A':>7}")
for k in keys:
    med = {s: statistics.median(float(r[k]) for r in runs[s] if k in r) for s in "AB"}
    ratio = med["B"] / med["A"] if med["A"] else float("nan")
    each = lambda s: " ".join(r.get(k, "?") for r in runs[s])
    print(f"{k:32} {med['A']:10.3f} {med['B']:10.3f} {ratio:7.2f}   (A: {each('A')}; B: {each('B')})")
PY
