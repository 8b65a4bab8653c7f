#!/usr/bin/env bash
# TFTP throughput of pifoundry-tftp (a plain directory) and of powerd's Pi-network TFTP (the
# same server through pinet's resolver: serial prefix, Directory lookup, boot dir opened per
# request) next to dnsmasq's TFTP server (the server of Raspberry Pi's netboot tutorial),
# serving the same file to the same client (curl), to one client and to ten at once. Both servers run on the loopback of a network namespace this script creates
# (dnsmasq's TFTP port is fixed at 69), so it needs root.
# Usage: scripts/bench-tftp.sh   BENCH_MIB=64 (file size), BLKSIZE=1468, RUNS=3 (best of)
set -euo pipefail
cd "$(dirname "$0")/.."

mib=${BENCH_MIB:-64}
blksize=${BLKSIZE:-1468}
runs=${RUNS:-3}
clients=10

[ "$(id -u)" -eq 0 ] || { echo "bench-tftp: needs root (network namespace)" >&2; exit 1; }
for tool in curl dnsmasq ip nsenter; do
  command -v "$tool" >/dev/null || { echo "bench-tftp: $tool not found (scripts/install-prereqs.sh bench)" >&2; exit 1; }
done

cargo build --release --locked -q -p pifoundry-tftp --example tftpd
cargo build --release --locked -q -p powerd --example pinet-tftpd
ours=$PWD/target/release/examples/tftpd
pinet=$PWD/target/release/examples/pinet-tftpd

work=$(mktemp -d)
ns=pf-tftp-bench-$$
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
# nsenter execs the command: started in the background directly (not through a function,
# which would be a subshell), $! is the server itself and cleanup can end it
in_ns() { nsenter --net="/run/netns/$ns" "$@"; }

mkdir -p "$work/root" "$work/out"
head -c "$((mib * 1024 * 1024))" /dev/urandom >"$work/root/initrd.img"
chmod -R a+rX "$work"
want=$(sha256sum <"$work/root/initrd.img" | cut -d' ' -f1)

# fetch PORT N [PATH]: N curl clients at once, each the whole file; prints the wall time in seconds
fetch() {
  local port=$1 n=$2 path=${3:-initrd.img} start end i
  local fetched=()
  start=$(date +%s.%N)
  for i in $(seq "$n"); do
    in_ns curl -sS --tftp-blksize "$blksize" -o "$work/out/$i" "tftp://127.0.0.1:$port/$path" &
    fetched+=($!)
  done
  for p in "${fetched[@]}"; do wait "$p"; done
  end=$(date +%s.%N)
  for i in $(seq "$n"); do
    [ "$(sha256sum <"$work/out/$i" | cut -d' ' -f1)" = "$want" ] || { echo "bench-tftp: client $i got a different file" >&2; exit 1; }
  done
  rm -f "$work/out"/*
  echo "$end - $start" | bc -l
}

# best PORT N [PATH]: the best of $runs runs, as MiB/s over all N clients
best() {
  local t min=
  for _ in $(seq "$runs"); do
    t=$(fetch "$1" "$2" "${3:-}")
    if [ -z "$min" ] || [ "$(echo "$t < $min" | bc -l)" = 1 ]; then min=$t; fi
  done
  echo "$mib * $2 / $min" | bc -l
}

peak_rss_mib() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
# cpu_ms_per_mib PID: the server's user+system CPU time so far per MiB it served
served_mib=$((mib * runs * (1 + clients)))
cpu_ms_per_mib() {
  local ticks
  ticks=$(awk '{print $14 + $15}' "/proc/$1/stat")
  echo "$ticks * 1000 / $(getconf CLK_TCK) / $served_mib" | bc -l
}

# pifoundry-tftp: the example server over the library, logging every transfer as powerd would
RUST_LOG=info nsenter --net="/run/netns/$ns" "$ours" "$work/root" 127.0.0.1:0 >"$work/ours.out" 2>"$work/ours.log" &
pids+=($!)
port=
for _ in $(seq 100); do
  port=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$work/ours.out")
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { echo "bench-tftp: our server did not start:" >&2; cat "$work/ours.log" >&2; exit 1; }
ours_pid=${pids[-1]}
ours_one=$(best "$port" 1)
ours_ten=$(best "$port" "$clients")
ours_rss=$(peak_rss_mib "$ours_pid")
ours_cpu=$(cpu_ms_per_mib "$ours_pid")
kill "$ours_pid"; wait "$ours_pid" || true  # SIGTERM: graceful shutdown

# pinet: powerd's resolver over a one-Pi Directory, the file in that Pi's boot dir
RUST_LOG=info nsenter --net="/run/netns/$ns" "$pinet" "$work/root" 127.0.0.1:0 >"$work/pinet.out" 2>"$work/pinet.log" &
pids+=($!)
pport=
for _ in $(seq 100); do
  pport=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$work/pinet.out")
  [ -n "$pport" ] && break
  sleep 0.1
done
[ -n "$pport" ] || { echo "bench-tftp: pinet-tftpd did not start:" >&2; cat "$work/pinet.log" >&2; exit 1; }
pinet_pid=${pids[-1]}
pinet_one=$(best "$pport" 1 1a2b3c4d/initrd.img)
pinet_ten=$(best "$pport" "$clients" 1a2b3c4d/initrd.img)
pinet_rss=$(peak_rss_mib "$pinet_pid")
pinet_cpu=$(cpu_ms_per_mib "$pinet_pid")
kill "$pinet_pid"; wait "$pinet_pid" || true

# dnsmasq: TFTP only (no DNS, no DHCP), logging to a file
nsenter --net="/run/netns/$ns" dnsmasq --keep-in-foreground --conf-file=/dev/null --port=0 --bind-interfaces \
  --listen-address=127.0.0.1 --enable-tftp --tftp-root="$work/root" --tftp-max=64 \
  --user=root --group=root --pid-file="$work/dnsmasq.pid" --log-facility="$work/dnsmasq.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/dnsmasq.pid" ] && break; sleep 0.1; done
dnsmasq_pid=${pids[-1]}
[ "$(cat "$work/dnsmasq.pid")" = "$dnsmasq_pid" ] || { echo "bench-tftp: dnsmasq did not start as expected" >&2; exit 1; }
peer_one=$(best 69 1)
peer_ten=$(best 69 "$clients")
peer_rss=$(peak_rss_mib "$dnsmasq_pid")
peer_cpu=$(cpu_ms_per_mib "$dnsmasq_pid")

echo "tftp bench: $mib MiB file, blksize $blksize, $(curl --version | head -1 | cut -d' ' -f1-2), best of $runs, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
r() { echo "$1 / $2" | bc -l; }
printf '%-22s %15s %15s %15s %7s %7s\n' "" "pifoundry-tftp" "powerd pinet" "$(dnsmasq --version | head -1 | cut -d' ' -f1,3)" "tftp/dm" "pinet/dm"
printf '%-22s %15.1f %15.1f %15.1f %7.2f %7.2f\n' "1 client, MiB/s" "$ours_one" "$pinet_one" "$peer_one" "$(r "$ours_one" "$peer_one")" "$(r "$pinet_one" "$peer_one")"
printf '%-22s %15.1f %15.1f %15.1f %7.2f %7.2f\n' "$clients clients, MiB/s" "$ours_ten" "$pinet_ten" "$peer_ten" "$(r "$ours_ten" "$peer_ten")" "$(r "$pinet_ten" "$peer_ten")"
printf '%-22s %15.2f %15.2f %15.2f %7.2f %7.2f\n' "server CPU, ms/MiB" "$ours_cpu" "$pinet_cpu" "$peer_cpu" "$(r "$ours_cpu" "$peer_cpu")" "$(r "$pinet_cpu" "$peer_cpu")"
printf '%-22s %15s %15s %15s %7.2f %7.2f\n' "peak RSS, MiB" "$ours_rss" "$pinet_rss" "$peer_rss" "$(r "$ours_rss" "$peer_rss")" "$(r "$pinet_rss" "$peer_rss")"
