#!/usr/bin/env bash
# Benchmark: `baker verify-release` on a ~1 GiB synthetic release against `gzip -dc` on the
# same file. Prints wall times, their ratio and baker's peak RSS.
# Targets (issue 2): verify ≤ 1.5× gunzip, peak RSS ≤ 100 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."

WORK=${BENCH_DIR:-target/bench}
MIB=${BENCH_MIB:-1024}
PACKAGES=${BENCH_PACKAGES:-200}
JOBS=${BENCH_JOBS:-100}
REL="$WORK/synthetic-${MIB}m.tgz"

cargo build --release --locked -q -p baker
BAKER=target/release/baker
mkdir -p "$WORK"
if [ ! -f "$REL" ]; then
  echo "bench-release: writing $REL ($PACKAGES packages, $JOBS jobs, $MIB MiB of blobs)" >&2
  "$BAKER" synth-release "$REL" --packages "$PACKAGES" --jobs "$JOBS" --mib "$MIB"
fi
cat "$REL" > /dev/null # same page-cache state for both runs

measure() { # prints "seconds max_rss_kib"
  /usr/bin/time -f '%e %M' -o "$WORK/time.out" "$@" > /dev/null
  cat "$WORK/time.out"
}

read -r gz_s gz_kib < <(measure gzip -dc "$REL")
read -r v_s v_kib < <(measure "$BAKER" verify-release "$REL")

size=$(stat -c %s "$REL")
awk -v size="$size" -v gz="$gz_s" -v v="$v_s" -v rss="$v_kib" -v grss="$gz_kib" 'BEGIN {
  printf "release size          %.0f MiB\n", size / 1048576
  printf "gzip -dc > /dev/null  %.2f s (peak RSS %.1f MiB)\n", gz, grss / 1024
  printf "baker verify-release  %.2f s (peak RSS %.1f MiB)\n", v, rss / 1024
  printf "ratio verify/gunzip   %.2fx (target <= 1.5x)\n", (gz > 0 ? v / gz : 0)
  printf "peak RSS              %s (target <= 100 MiB)\n", (rss / 1024 <= 100 ? "ok" : "OVER")
}'
