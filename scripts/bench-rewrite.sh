#!/usr/bin/env bash
# Benchmark: `baker rewrite-release` on a ~1 GiB synthetic release in which one 100 MiB
# golang package changes, against `baker verify-release` of the same input (the one pass
# a rewrite cannot avoid: every digest and fingerprint is checked), `gzip -dc`, and a naive
# `tar xzf` / edit / `tar czf` pipeline (which does less: it fixes no fingerprint).
# The ELF audit of the output (a second full pass, `baker audit`'s own benchmark) is left
# out with --no-audit.
# Targets: rewrite wall <= 1.2x verify-release and bytes written <= 1.05x the output size
# (issue 13: one streaming pass); >= 3x faster than the naive pipeline, peak RSS <= 100 MiB
# (issue 3). Bytes written are the kernel's count of file-system output blocks (512 bytes,
# `/usr/bin/time` %O) of the rewrite process.
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
read -r vr_s _ < <(measure "$BAKER" verify-release "$REL")
read -r gz_s _ < <(measure gzip -dc "$REL")
rm -f "$WORK/rewritten.tgz"
/usr/bin/time -f '%e %M %O' -o "$WORK/time.out" "$BAKER" rewrite-release "$REL" \
  --recipe "$WORK/bench-recipe.yml" -o "$WORK/rewritten.tgz" --blob "go-armv6l=$ARM" \
  --no-audit > /dev/null
read -r rw_s rw_kib rw_blocks < "$WORK/time.out"
out_bytes=$(stat -c %s "$WORK/rewritten.tgz")
export -f naive; export WORK REL ARM
read -r nv_s _ < <(measure bash -c naive)
"$BAKER" verify-release "$WORK/rewritten.tgz" > /dev/null
rm -f "$WORK/rewritten.tgz"
load=$(cut -d' ' -f1-3 /proc/loadavg)

awk -v vr="$vr_s" -v gz="$gz_s" -v rw="$rw_s" -v nv="$nv_s" -v rss="$rw_kib" \
    -v wr="$rw_blocks" -v out="$out_bytes" -v load="$load" -v cpus="$(nproc)" 'BEGIN {
  printf "baker verify-release (input)   %.2f s\n", vr
  printf "gzip -dc > /dev/null           %.2f s\n", gz
  printf "baker rewrite-release          %.2f s (peak RSS %.1f MiB)\n", rw, rss / 1024
  printf "naive tar xzf/edit/tar czf     %.2f s\n", nv
  printf "rewrite wrote                  %.1f MiB for a %.1f MiB output\n", wr * 512 / 1048576, out / 1048576
  printf "ratio bytes written/output     %.3fx (target <= 1.05x)\n", wr * 512 / out
  printf "ratio rewrite/verify-release   %.2fx (target <= 1.2x)\n", rw / vr
  printf "ratio rewrite/gunzip           %.2fx\n", rw / gz
  printf "speed-up over naive            %.2fx (target >= 3x)\n", nv / rw
  printf "peak RSS                       %s (target <= 100 MiB)\n", (rss / 1024 <= 100 ? "ok" : "OVER")
  printf "load average at the end        %s on %d CPUs\n", load, cpus
}'
