#!/usr/bin/env bash
# Benchmark: `baker verify-release` on a ~1 GiB synthetic release against `gzip -dc` on the
# same file. Prints wall times, their ratio and baker's peak RSS.
# Targets (issue 2): verify ≤ 1.5× gunzip, peak RSS ≤ 100 MiB.
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"
REL="$WORK/synthetic-${MIB}m.tgz"
synth_release "$REL"
cat "$REL" > /dev/null # same page-cache state for both runs

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
