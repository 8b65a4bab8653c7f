#!/usr/bin/env bash
# powerd's block layer next to its peers:
# 1. qcow2 overlay creation (Block::create_overlay) over 1, 2 and 4 GiB raw bases (allocated
#    with fallocate, not sparse): the time must not grow with the base (target <= 1 s).
# 2. NBD read throughput of a VM root as powerd serves it (qemu-nbd on a qcow2 overlay) next to
#    qemu-nbd serving the plain raw base with the same options, read by the same client
#    (nbdcopy to null:), page cache warm, best of RUNS.
# Usage: scripts/bench-nbd.sh   BENCH_MIB=1024 (read size), RUNS=3; BLOCK_BIN=path skips the build
set -euo pipefail
cd "$(dirname "$0")/.."

mib=${BENCH_MIB:-1024}
runs=${RUNS:-3}
for tool in qemu-img qemu-nbd nbdcopy fallocate bc; do
  command -v "$tool" >/dev/null || { echo "bench-nbd: $tool not found (scripts/install-prereqs.sh test bench)" >&2; exit 1; }
done
if [ -z "${BLOCK_BIN:-}" ]; then
  cargo build --release --locked -q -p powerd --example block
  BLOCK_BIN=$PWD/target/release/examples/block
fi

mkdir -p target
work=$(mktemp -d -p "$PWD/target" bench-nbd.XXXXXX)
peer=
ours=
cleanup() {
  [ -n "$peer" ] && { kill "$peer" 2>/dev/null || true; wait "$peer" 2>/dev/null || true; }
  [ -n "$ours" ] && "$BLOCK_BIN" unexport "$work/state" "$ours" || true
  rm -rf "$work"
}
trap cleanup EXIT

# 1. overlay creation
for g in 1 2 4; do fallocate -l "${g}G" "$work/base-$g.img"; done
declare -A took
while read -r base secs; do took[$(basename "$base" .img)]=$secs; done \
  < <("$BLOCK_BIN" overlay-times 5 "$work/base-1.img" "$work/base-2.img" "$work/base-4.img")
rm -f "$work"/base-?.img

# 2. read throughput
head -c "$((mib << 20))" /dev/urandom >"$work/base.img"
"$BLOCK_BIN" overlay "$work/base.img" "$work/root.qcow2"
cat "$work/base.img" >/dev/null

# best URL: the best of $runs nbdcopy runs, in MiB/s
best() {
  local min= s e t
  for _ in $(seq "$runs"); do
    s=$(date +%s.%N); nbdcopy "$1" null:; e=$(date +%s.%N)
    t=$(echo "$e - $s" | bc -l)
    if [ -z "$min" ] || [ "$(echo "$t < $min" | bc -l)" = 1 ]; then min=$t; fi
  done
  echo "$mib / $min" | bc -l
}

read -r url ours < <("$BLOCK_BIN" export "$work/state" "$work/root.qcow2" qcow2)
overlay_mibs=$(best "$url")
"$BLOCK_BIN" unexport "$work/state" "$ours"; ours=

qemu-nbd --bind=127.0.0.1 --port=10900 --export-name=raw --format=raw --shared=8 --persistent \
  --cache=writeback --aio=threads --discard=unmap "$work/base.img" 2>"$work/peer.log" &
peer=$!
for _ in $(seq 100); do nbdinfo --size nbd://127.0.0.1:10900/raw >/dev/null 2>&1 && break; sleep 0.1; done
raw_mibs=$(best nbd://127.0.0.1:10900/raw)

echo "nbd bench: $(qemu-nbd --version | head -1), $(nbdcopy --version | head -1), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
printf '%-34s %10s %10s %10s\n' "overlay creation (best of 5), s" "1 GiB" "2 GiB" "4 GiB"
printf '%-34s %10s %10s %10s   4 GiB / 1 GiB: %.2f\n' "" "${took[base-1]}" "${took[base-2]}" "${took[base-4]}" \
  "$(echo "${took[base-4]} / ${took[base-1]}" | bc -l)"
printf '%-34s %12s %12s %8s\n' "NBD read, $mib MiB, best of $runs" "overlay" "plain raw" "ratio"
printf '%-34s %12.1f %12.1f %8.2f\n' "MiB/s (nbdcopy to null:)" "$overlay_mibs" "$raw_mibs" "$(echo "$overlay_mibs / $raw_mibs" | bc -l)"
