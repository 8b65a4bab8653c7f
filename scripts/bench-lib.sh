# Shared by the baker benchmarks: source it from a script in scripts/.
# Builds baker (release, into $CARGO_TARGET_DIR if set), prepares $WORK, and offers
# `synth_release` and `measure`.
# shellcheck shell=bash
cd "$(dirname "${BASH_SOURCE[0]}")/.."

WORK=${BENCH_DIR:-target/bench}
MIB=${BENCH_MIB:-1024}
PACKAGES=${BENCH_PACKAGES:-200}
JOBS=${BENCH_JOBS:-100}

cargo build --release --locked -q -p baker
BAKER=$(realpath "${CARGO_TARGET_DIR:-target}")/release/baker
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)

# synth_release FILE [extra synth-release flags…]: writes the synthetic release once.
synth_release() {
  local rel=$1
  shift
  if [ ! -f "$rel" ]; then
    echo "$(basename "$0"): writing $rel ($PACKAGES packages, $JOBS jobs, $MIB MiB of blobs)" >&2
    "$BAKER" synth-release "$rel" --packages "$PACKAGES" --jobs "$JOBS" --mib "$MIB" "$@"
  fi
}

# measure CMD…: runs CMD with stdout discarded and prints "seconds max_rss_kib".
measure() {
  /usr/bin/time -f '%e %M' -o "$WORK/time.out" "$@" > /dev/null
  cat "$WORK/time.out"
}
