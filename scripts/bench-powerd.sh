#!/usr/bin/env bash
# powerd throughput and latency on the loopback, sim backend, against the project targets
# (≥ 2,000 req/s and p99 ≤ 10 ms on 2 cores): `powerd serve` as its own process, driven by
# the loadgen example (tokio + hyper keep-alive clients), bounded by count and time.
# Usage: scripts/bench-powerd.sh [requests-per-run]   (default 20000; each run stops after 15 s)
#        CONCURRENCY=16 (connections)
set -euo pipefail
cd "$(dirname "$0")/.."

requests=${1:-20000}
concurrency=${CONCURRENCY:-16}

cargo build --release --locked -q -p powerd --bin powerd --example loadgen
bin=target/release/powerd
loadgen=target/release/examples/loadgen

work=$(mktemp -d)
shm=$(mktemp -d -p /dev/shm 2>/dev/null || true)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work" ${shm:+"$shm"}
}
trap cleanup EXIT

token="bench-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
echo "bench:$token" >"$work/tokens"
chmod 600 "$work/tokens"
# one outlet per connection, so that every PUT is a transition
outlets=$(seq -f 'n%g' 1 "$concurrency" | paste -sd,)

# start_powerd NAME STATE_DIR: runs powerd with its state file in STATE_DIR; sets $addr
start_powerd() {
  local name=$1 dir=$2
  {
    echo "listen: 127.0.0.1:0"
    echo "state_file: $dir/state.json"
    echo "audit_log: $dir/audit.log"
    echo "auth: {token_file: $work/tokens}"
    echo "outlets:"
    for o in ${outlets//,/ }; do echo "  - {id: $o, backend: sim}"; done
  } >"$work/$name.yml"
  RUST_LOG=info "$bin" serve --config "$work/$name.yml" 2>"$work/$name.log" &
  pids+=($!)
  addr=
  for _ in $(seq 100); do
    addr=$(sed -n 's/.*powerd listening addr=\([^ ]*\).*/\1/p' "$work/$name.log" 2>/dev/null || true)
    [ -n "$addr" ] && return 0
    sleep 0.1
  done
  echo "bench-powerd: powerd did not start:" >&2; cat "$work/$name.log" >&2; exit 1
}

load() { # mode addr [extra args]
  local mode=$1 url=http://$2; shift 2
  "$loadgen" --url "$url" --token "$token" --mode "$mode" --outlets "$outlets" \
    --concurrency "$concurrency" --requests "$requests" --seconds 15 "$@"
}

echo "powerd bench: $requests requests per run, $concurrency connections, $(nproc) cores, loopback, load $(cut -d' ' -f1 /proc/loadavg)"
start_powerd disk "$work"
load get "$addr"
load power "$addr"
load mixed "$addr" --concurrency 50
echo "  (mixed: 50 clients; each PUT is a real transition: audit line + fsync'd state file on $(df --output=fstype "$work" | tail -1 | tr -d ' '))"
if [ -n "$shm" ]; then
  start_powerd tmpfs "$shm"
  load power "$addr"
  echo "  (same, state file on tmpfs: the API and scheduler cost without the disk's fsync latency)"
fi
