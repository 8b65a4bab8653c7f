#!/usr/bin/env bash
# Benchmark: `baker rewrite-release` on a ~1 GiB synthetic release in which one 100 MiB
# golang package changes, against `gzip -dc` of the same file and against a naive
# `tar xzf` / edit / `tar czf` pipeline (which does less: it fixes no fingerprint).
# The ELF audit of the output (a second full pass, `baker audit`'s own benchmark) is left
# out with --no-audit.
# Targets (issue 3): rewrite <= 1.25x gunzip, >= 3x faster than the naive pipeline,
# peak RSS <= 100 MiB.
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"
GOLANG_MIB=${BENCH_GOLANG_MIB:-100}
REL="$WORK/synthetic-${MIB}m-golang${GOLANG_MIB}m.tgz"
synth_release "$REL" --golang-mib "$GOLANG_MIB"
ARM="$WORK/go-armv6l-${GOLANG_MIB}m.tar.gz"
[ -f "$ARM" ] || head -c "$((GOLANG_MIB << 20))" /dev/urandom > "$ARM"
cat > "$WORK/bench-recipe.yml" <<'YML'
release: synthetic
target: armv6l
version_suffix: "+pi.armv6l"
rules:
  - packages: golang-1-linux
    files: "golang/go*.linux-amd64.tar.gz"
    replace: { blob: go-armv6l, path: "golang/go1.22.5.linux-{{arch}}.tar.gz" }
  - packages: golang-1-linux
    patch: { literal: linux-amd64, with: "linux-{{arch}}" }
YML

naive() {
  local x="$WORK/naive"
  rm -rf "$x" && mkdir -p "$x/tree" "$x/pkg"
  tar xzf "$REL" -C "$x/tree"
  tar xzf "$x/tree/packages/golang-1-linux.tgz" -C "$x/pkg"
  rm "$x/pkg/golang/"go*.linux-amd64.tar.gz
  cp "$ARM" "$x/pkg/golang/go1.22.5.linux-armv6l.tar.gz"
  sed -i 's/linux-amd64/linux-armv6l/' "$x/pkg/packaging"
  tar czf "$x/tree/packages/golang-1-linux.tgz" -C "$x/pkg" .
  tar czf "$x/out.tgz" -C "$x/tree" .
  rm -rf "$x"
}

cat "$REL" "$ARM" > /dev/null # same page-cache state for every run
read -r gz_s _ < <(measure gzip -dc "$REL")
read -r rw_s rw_kib < <(measure "$BAKER" rewrite-release "$REL" --recipe "$WORK/bench-recipe.yml" \
  -o "$WORK/rewritten.tgz" --blob "go-armv6l=$ARM" --no-audit)
export -f naive; export WORK REL ARM
read -r nv_s _ < <(measure bash -c naive)
"$BAKER" verify-release "$WORK/rewritten.tgz" > /dev/null
rm -f "$WORK/rewritten.tgz"

awk -v gz="$gz_s" -v rw="$rw_s" -v nv="$nv_s" -v rss="$rw_kib" 'BEGIN {
  printf "gzip -dc > /dev/null           %.2f s\n", gz
  printf "baker rewrite-release          %.2f s (peak RSS %.1f MiB)\n", rw, rss / 1024
  printf "naive tar xzf/edit/tar czf     %.2f s\n", nv
  printf "ratio rewrite/gunzip           %.2fx (target <= 1.25x)\n", rw / gz
  printf "speed-up over naive            %.2fx (target >= 3x)\n", nv / rw
  printf "peak RSS                       %s (target <= 100 MiB)\n", (rss / 1024 <= 100 ? "ok" : "OVER")
}'
