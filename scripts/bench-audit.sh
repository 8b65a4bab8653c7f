#!/usr/bin/env bash
# Benchmark: `baker audit --arch armv6l` on the ~1 GiB synthetic release of bench-release.sh
# (every package archive is inflated and every member's head inspected) against `gzip -dc`
# on the same file, which inflates only the outer layer. Prints wall times, their ratio and
# baker's peak RSS. Targets: audit ≤ 2× gunzip (two gzip layers), peak RSS ≤ 100 MiB.
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
  echo "bench-audit: writing $REL ($PACKAGES packages, $JOBS jobs, $MIB MiB of blobs)" >&2
  "$BAKER" synth-release "$REL" --packages "$PACKAGES" --jobs "$JOBS" --mib "$MIB"
fi
cat "$REL" > /dev/null # same page-cache state for both runs

measure() { # prints "seconds max_rss_kib"
  /usr/bin/time -f '%e %M' -o "$WORK/time.out" "$@" > /dev/null
  cat "$WORK/time.out"
}

read -r gz_s gz_kib < <(measure gzip -dc "$REL")
read -r a_s a_kib < <(measure "$BAKER" audit "$REL" --arch armv6l)

size=$(stat -c %s "$REL")
awk -v size="$size" -v gz="$gz_s" -v a="$a_s" -v rss="$a_kib" -v grss="$gz_kib" 'BEGIN {
  printf "release size          %.0f MiB\n", size / 1048576
  printf "gzip -dc > /dev/null  %.2f s (peak RSS %.1f MiB)\n", gz, grss / 1024
  printf "baker audit           %.2f s (peak RSS %.1f MiB)\n", a, rss / 1024
  printf "ratio audit/gunzip    %.2fx (target <= 2x)\n", (gz > 0 ? a / gz : 0)
  printf "peak RSS              %s (target <= 100 MiB)\n", (rss / 1024 <= 100 ? "ok" : "OVER")
}'
