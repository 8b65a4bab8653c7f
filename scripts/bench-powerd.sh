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
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

token="bench-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
echo "bench:$token" >"$work/tokens"
outlets=$(seq -f 'n%g' 1 16 | paste -sd,)
{
  echo "listen: 127.0.0.1:0"
  echo "state_file: $work/state.json"
  echo "audit_log: $work/audit.log"
  echo "auth: {token_file: $work/tokens}"
  echo "outlets:"
  for o in ${outlets//,/ }; do echo "  - {id: $o, backend: sim}"; done
} >"$work/powerd.yml"

RUST_LOG=info "$bin" serve --config "$work/powerd.yml" 2>"$work/powerd.log" &
pid=$!
addr=
for _ in $(seq 100); do
  addr=$(sed -n 's/.*powerd listening addr=\([^ ]*\).*/\1/p' "$work/powerd.log")
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { echo "bench-powerd: powerd did not start:" >&2; cat "$work/powerd.log" >&2; exit 1; }

echo "powerd bench: $requests requests per run, $concurrency connections, $(nproc) cores, loopback, load $(cut -d' ' -f1 /proc/loadavg)"
"$loadgen" --url "http://$addr" --token "$token" --mode get \
  --concurrency "$concurrency" --requests "$requests" --seconds 15
"$loadgen" --url "http://$addr" --token "$token" --mode power --outlets "$outlets" \
  --concurrency "$concurrency" --requests "$requests" --seconds 15
echo "(each PUT is a real transition: audit line + fsync'd state file on $(df --output=fstype "$work" | tail -1 | tr -d ' '); $(wc -l <"$work/audit.log") transitions audited)"
