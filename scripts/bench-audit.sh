#!/usr/bin/env bash
# Benchmark: `baker audit --arch armv6l` on the ~1 GiB synthetic release of bench-release.sh
# (every package archive is inflated and every member's head inspected) against `gzip -dc`
# on the same file, which inflates only the outer layer. Prints wall times, their ratio and
# baker's peak RSS. Targets: audit ≤ 2× gunzip (two gzip layers), peak RSS ≤ 100 MiB.
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"
REL="$WORK/synthetic-${MIB}m.tgz"
synth_release "$REL"
cat "$REL" > /dev/null # same page-cache state for both runs

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
