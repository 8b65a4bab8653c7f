#!/usr/bin/env bash
# Runs every fuzz target (fuzz/src/lib.rs) under libFuzzer for a set time and prints, per
# target, executions, corpus size and crashes. Crash inputs land in target/fuzz/artifacts/<t>/;
# the corpus grows in target/fuzz/corpus/<t>/ and is kept between runs.
# Usage: scripts/fuzz.sh [seconds-per-target] [target...]     (default 180 s, every target)
#
# The machine has one stable toolchain; cargo-fuzz passes rustc's -Z flags for
# sanitizer-coverage instrumentation, which stable rustc accepts with RUSTC_BOOTSTRAP=1.
# No sanitizer (-s none): the code is safe Rust; libFuzzer still catches panics, overflows
# (debug assertions are on), timeouts and memory blow-ups (-rss_limit_mb, -malloc_limit_mb).
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-180}
shift || true
targets=("$@")
tdir=target/fuzz
export RUSTC_BOOTSTRAP=1

cargo build --locked -q -p pifoundry-fuzz --bin fuzz-seeds
seeds_bin=target/debug/fuzz-seeds
build_start=$(date +%s)
cargo fuzz build --fuzz-dir fuzz/libfuzzer -s none -a -O --target-dir "$tdir" pifoundry
build_secs=$(( $(date +%s) - build_start ))
bin=$tdir/x86_64-unknown-linux-gnu/release/pifoundry
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <("$seeds_bin" --list)

scratch=$(mktemp -d "${TMPDIR:-/tmp}/pifoundry-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

echo "fuzz: ${#targets[@]} targets, ${secs}s each, build ${build_secs}s, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
printf '%-20s %12s %10s %8s %8s\n' target executions exec/s corpus crashes
failed=0 total_execs=0
for t in "${targets[@]}"; do
  corpus=$tdir/corpus/$t artifacts=$tdir/artifacts/$t
  mkdir -p "$corpus" "$artifacts" "$scratch/tmp-$t"
  "$seeds_bin" "$t" "$scratch/seeds-$t" >/dev/null
  before=$(find "$artifacts" -type f | wc -l)
  rc=0
  TMPDIR=$scratch/tmp-$t PIFOUNDRY_FUZZ_TARGET=$t "$bin" "$corpus" "$scratch/seeds-$t" \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=1024 -malloc_limit_mb=512 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 -close_fd_mask=1 \
    >"$scratch/$t.log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch/$t.log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$scratch/$t.log" | tail -1)
  crashes=$(( $(find "$artifacts" -type f | wc -l) - before ))
  printf '%-20s %12s %10s %8s %8s\n' "$t" "${execs:-?}" "${rate:-?}" "$(find "$corpus" -type f | wc -l)" "$crashes"
  total_execs=$(( total_execs + ${execs:-0} ))
  if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    failed=$((failed + 1))
    echo "fuzz: $t failed (exit $rc); libFuzzer said:" >&2
    grep -E '^(==|SUMMARY|thread|panicked|Test unit written|artifact_prefix)|ERROR|panicked at' "$scratch/$t.log" | head -20 >&2 || tail -20 "$scratch/$t.log" >&2
  fi
done
echo "fuzz: $total_execs executions, $failed of ${#targets[@]} targets crashed"
[ "$failed" -eq 0 ]
