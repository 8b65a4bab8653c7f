#!/usr/bin/env bash
# Benchmark of `baker bake` (issue 4 targets on 2 cores: cold ≤ 10 min, warm ≤ 30 s,
# identical: yes):
#   1. cold bake of the recipe into an empty stage cache;
#   2. warm re-bake after changing a late stage (one more command in the `checks` stage);
#   3. a second cold bake into another empty cache, compared byte for byte with the first
#      (stemcell tarball and root.img). BENCH_IDENTICAL=0 skips it (it costs a cold bake).
# Default recipe: the CI one (the real agent needs blobs CI cannot fetch).
# Needs root (mmdebstrap, chroot mounts).
set -euo pipefail
cd "$(dirname "$0")/.."

RECIPE=${BENCH_RECIPE:-recipes/stemcells/ci-armv6l.yml}
WORK=${BENCH_DIR:-/var/tmp/pifoundry-bench-stemcell}
IDENTICAL=${BENCH_IDENTICAL:-1}

cargo build --release --locked -q -p baker
BAKER=$PWD/target/release/baker
rm -rf "$WORK"
mkdir -p "$WORK"
# the changed recipe must sit beside the original: recipe paths are project-relative
WARM_RECIPE="$(dirname "$RECIPE")/.bench-warm-$$.yml"
trap 'rm -f "$WARM_RECIPE"' EXIT

secs() { # run, print elapsed seconds
  local t0 t1
  t0=$(date +%s.%N)
  "$@" > "$WORK/last.out" 2> "$WORK/last.err" || { cat "$WORK/last.err" >&2; exit 1; }
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}

echo "bench-stemcell: cold bake of $RECIPE (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
cold=$(secs "$BAKER" bake --recipe "$RECIPE" -o "$WORK/out-a" --cache-dir "$WORK/cache-a")
cat "$WORK/last.out"

python3 - "$RECIPE" "$WARM_RECIPE" <<'PY'
import sys
src, dst = sys.argv[1:]
s = open(src).read()
marker = "  - name: checks\n    kind: chroot\n    commands:\n"
assert marker in s, "recipe has no `checks` chroot stage"
open(dst, "w").write(s.replace(marker, marker + "      - echo bench-warm-change\n", 1))
PY
echo "bench-stemcell: warm re-bake after changing the late 'checks' stage" >&2
warm=$(secs "$BAKER" bake --recipe "$WARM_RECIPE" -o "$WORK/out-warm" --cache-dir "$WORK/cache-a")
cat "$WORK/last.out"
ran=$(grep -c ' ran ' "$WORK/last.out" || true)

identical="not measured (BENCH_IDENTICAL=0)"
cold2=""
if [ "$IDENTICAL" = 1 ]; then
  echo "bench-stemcell: second cold bake into an empty cache" >&2
  cold2=$(secs "$BAKER" bake --recipe "$RECIPE" -o "$WORK/out-b" --cache-dir "$WORK/cache-b")
  a=$(ls "$WORK"/out-a/*.tgz); b=$(ls "$WORK"/out-b/*.tgz)
  if cmp -s "$a" "$b" && cmp -s "$WORK/out-a/root.img" "$WORK/out-b/root.img"; then
    identical=yes
  else
    identical="NO ($(sha256sum "$a" "$b" "$WORK/out-a/root.img" "$WORK/out-b/root.img" | awk '{print substr($1,1,12)}' | xargs))"
  fi
fi

printf '\nbench-stemcell (%s, %s cores)\n' "$RECIPE" "$(nproc)"
printf '  cold bake:               %8.1f s   (target ≤ 600 s)\n' "$cold"
printf '  warm re-bake, late change:%7.1f s   (target ≤ 30 s; %s stages ran)\n' "$warm" "$ran"
[ -n "$cold2" ] && printf '  second cold bake:        %8.1f s\n' "$cold2"
printf '  byte-identical bakes:    %s\n' "$identical"
