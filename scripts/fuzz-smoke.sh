#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a bounded time on its saved corpus
# (fuzz/corpus/<target>/), as CI does: FUZZ_SECS seconds each (default 20).
# A crash fails the script and leaves the input in fuzz/artifacts/<target>/.
#
# cargo-fuzz needs unstable compiler flags. A nightly toolchain is used when
# rustup has one; otherwise the stable compiler is told to accept them with
# RUSTC_BOOTSTRAP=1 (FUZZ_TOOLCHAIN=stable forces that path). Optimised, with
# debug assertions and overflow checks (-a) on, so an overflow is a crash. No sanitizer:
# the workspace forbids unsafe code, and ASan would halve the executions.
#
# The long run (FUZZ_RUNS=10000000 scripts/fuzz-smoke.sh) bounds executions
# instead of time and prints the figures the README's Reliability table has.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

secs="${FUZZ_SECS:-20}"
runs="${FUZZ_RUNS:-}"
toolchain="${FUZZ_TOOLCHAIN:-}"
if [ -z "$toolchain" ]; then
    if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then toolchain=nightly; else toolchain=stable; fi
fi
cargo_fuzz=(cargo "+$toolchain" fuzz)
if [ "$toolchain" = stable ]; then export RUSTC_BOOTSTRAP=1; fi

cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked

targets=("$@")
if ((${#targets[@]} == 0)); then mapfile -t targets < <("${cargo_fuzz[@]}" list); fi

"${cargo_fuzz[@]}" build -O -a -s none

target_dir="${CARGO_TARGET_DIR:-target}"
for t in "${targets[@]}"; do
    # Work on a copy: new inputs the run finds stay out of the repository.
    work="$(mktemp -d)"
    cp -r "corpus/$t/." "$work/"
    mkdir -p "artifacts/$t"
    limit=(-max_total_time="$secs")
    [ -n "$runs" ] && limit=(-runs="$runs")
    start=$(date +%s)
    if ! "$target_dir/x86_64-unknown-linux-gnu/release/$t" "$work" "${limit[@]}" \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$work.log" 2>&1; then
        tail -n 40 "$work.log"
        echo "fuzz target $t FAILED: input saved in fuzz/artifacts/$t/" >&2
        rm -rf "$work" "$work.log"
        exit 1
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work.log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work.log")
    echo "fuzz $t: $execs executions in $(($(date +%s) - start)) s ($rate/s), 0 crashes"
    rm -rf "$work" "$work.log"
done
