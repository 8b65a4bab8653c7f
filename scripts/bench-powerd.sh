#!/usr/bin/env bash
# powerd throughput and latency on the loopback, sim backend, against the project targets
# (≥ 2,000 req/s and p99 ≤ 10 ms on 2 cores): `powerd serve` as its own process, driven by
# the loadgen example (tokio + hyper keep-alive clients), bounded by count and time.
# Usage: scripts/bench-powerd.sh [requests-per-run]   (default 20000; each run stops after 15 s)
set -euo pipefail
cd "$(dirname "$0")/.."

requests=${1:-20000}
concurrency=${CONCURRENCY:-16}
target_rps=2000
target_p99_ms=10

cargo build --release --locked -q -p powerd --bin powerd --example loadgen
bin=target/release/powerd
loadgen=target/release/examples/loadgen

work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

token="bench-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
echo "bench:$token" >"$work/tokens"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
outlets=$(seq -f 'n%g' 1 16 | paste -sd,)
{
  echo "listen: 127.0.0.1:$port"
  echo "state_file: $work/state.json"
  echo "audit_log: $work/audit.log"
  echo "auth: {token_file: $work/tokens}"
  echo "outlets:"
  for o in ${outlets//,/ }; do echo "  - {id: $o, backend: sim}"; done
} >"$work/powerd.yml"

RUST_LOG=warn "$bin" serve --config "$work/powerd.yml" 2>"$work/powerd.log" &
pid=$!
for _ in $(seq 100); do
  "$bin" ctl --url "http://127.0.0.1:$port" --token-file "$work/tokens" list >/dev/null 2>&1 && break
  sleep 0.1
done

report() { # name json
  python3 - "$1" "$2" "$target_rps" "$target_p99_ms" <<'PY'
import json, sys
name, r, trps, tp99 = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
ok = r["rps"] >= trps and r["p99_ms"] <= tp99 and r["errors"] == 0
print(f"{name:<28} {r['rps']:>9.0f} req/s ({r['rps']/trps:.1f}x target)  "
      f"p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms ({tp99/max(r['p99_ms'],1e-9):.1f}x under)  "
      f"errors {r['errors']}  {'ok' if ok else 'MISSED TARGET'}")
PY
}

echo "powerd bench: $requests requests per run, $concurrency connections, $(nproc) cores, loopback"
get=$("$loadgen" --url "http://127.0.0.1:$port" --token "$token" --mode get \
  --concurrency "$concurrency" --requests "$requests" --seconds 15)
report "GET /v1/outlets" "$get"
put=$("$loadgen" --url "http://127.0.0.1:$port" --token "$token" --mode power --outlets "$outlets" \
  --concurrency "$concurrency" --requests "$requests" --seconds 15)
report "PUT /v1/outlets/{id}/power" "$put"
echo "(power changes are real transitions: audit line + fsync'd state file on $(df --output=fstype "$work" | tail -1))"
