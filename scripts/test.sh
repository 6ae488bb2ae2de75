#!/usr/bin/env bash
# The whole test suite: formatting, lints, no import loop between modules
# (scripts/check-imports.py), and every test of the workspace. Every test package runs
# even after a failure; the end names each failed test and the command to rerun its
# target, then one line of totals ("tests: N passed, N failed"), last. Exits non-zero if
# anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
python3 scripts/check-imports.py
# The end-to-end tests run the binaries (aftrd, aftrctl, b4): build them all first.
cargo build --workspace --release --bins
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --release --no-fail-fast 2>&1 | tee "$log" || status=$?
# Failed tests, each with its test binary ("e2e (tests/e2e.rs)"), from cargo's
# "Running"/"Doc-tests" headers and libtest's "test NAME ... FAILED" lines; then the
# targets cargo says to rerun (these also cover a binary that crashed without naming
# a test).
failures=$(awk '
    /^ +Running / {
        src = $0; sub(/^ +Running (unittests )?/, "", src); sub(/ \(.*/, "", src)
        bin = $0; sub(/.*\//, "", bin); sub(/-[0-9a-f]+\)$/, "", bin)
        target = bin " (" src ")"
    }
    /^ +Doc-tests / { target = $2 " (doc-tests)" }
    /^test .* \.\.\. FAILED$/ { name = $0; sub(/^test /, "", name); sub(/ \.\.\. FAILED$/, "", name); print "failed: " target ": " name }
    /^error: test failed, to rerun pass / { cmd = $0; sub(/.*to rerun pass /, "", cmd); gsub(/`/, "", cmd); rerun[cmd] = 1 }
    /^    `-p .*`$/ { cmd = $0; sub(/^ +/, "", cmd); gsub(/`/, "", cmd); rerun[cmd] = 1 }
    END { for (cmd in rerun) print "rerun: cargo test --release " cmd }
' "$log")
read -r passed failed < <(awk '/^test result:/ { for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } } END { print p + 0, f + 0 }' "$log")
if [ "$status" -ne 0 ] && [ "${failed:-0}" -eq 0 ]; then failed=1; fi
if [ -n "$failures" ]; then
    echo
    printf '%s\n' "$failures" | sort -s -t: -k1,1
fi
echo "tests: ${passed:-0} passed, ${failed:-0} failed"
exit "$status"
