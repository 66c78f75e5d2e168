#!/usr/bin/env bash
# The mirror's benchmark, on 127.0.0.1 only, against the lab tools:
#  1. call setup + teardown rate through the appliance (mirror-serve pinned to one core,
#     one worker): N tunnel clients each place calls back to back and hang up at CONNECTED
#     (ARQ, Setup, fast start, Connect, ReleaseComplete, DRQ for every call);
#  2. resident memory per registered tunnelled client: VmRSS of mirror-serve with 1 client,
#     then with CLIENTS more (each registered to the gatekeeper through its own RAS port).
#     Each client holds 3 descriptors in mirror-serve (tunnel, RAS port, signalling
#     listener). When the descriptor hard limit cannot hold CLIENTS in one process (raising
#     it needs CAP_SYS_RESOURCE), the clients are spread over SHARDS mirror-serve processes
#     (same gatekeeper), and the growth of all of them is divided by all the clients.
# Last line: bench=mirror call_setups_per_s=N rss_kib_per_client=M
set -euo pipefail
cd "$(dirname "$0")/../.."
BLOO=${BLOO:-build/bloo}
# GK_BLOO: another build's lab gatekeeper (e.g. to compare gatekeeper versions side by side).
CLIENTS=${CLIENTS:-10000}
CALLERS=${CALLERS:-8}
CALLS_EACH=${CALLS_EACH:-250}
CORE=${CORE:-0}
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
# Raise the descriptor limit as far as this process may (the hard limit only with CAP_SYS_RESOURCE).
nr_open=$(cat /proc/sys/fs/nr_open 2>/dev/null || echo 1048576)
ulimit -Hn "$(( nr_open < 200000 ? nr_open : 200000 ))" 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"
fit=$(( ($(ulimit -n) - 500) / 3 ))
SHARDS=$(( (CLIENTS + fit - 1) / fit ))
PER_SHARD=$(( (CLIENTS + SHARDS - 1) / SHARDS ))
if [ "$SHARDS" -gt 1 ]; then
    echo "bench/mirror: descriptor limit $(ulimit -n) (hard, not raisable here) holds $fit clients per mirror-serve: $CLIENTS clients over $SHARDS processes of $PER_SHARD"
fi
[ "$SHARDS" -le 2 ] || { echo "bench/mirror: descriptor limit $(ulimit -n) too low for $CLIENTS clients" >&2; exit 1; }
[ -x "$BLOO" ] || { echo "bench/mirror: $BLOO missing (make static)" >&2; exit 1; }
echo "bench/mirror: $($BLOO version 2>/dev/null || echo "$BLOO"), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

secret=bench-secret-0123456789
{ for i in $(seq 1 "$CALLERS"); do echo "caller$i $secret"; done
  for s in $(seq 0 $((SHARDS - 1))); do
      for i in $(seq 1 "$PER_SHARD"); do echo "reg${s}x$i $secret"; done
      echo "base${s}x1 $secret"
  done; } > "$work/subscribers"

start_lab() {
    "${GK_BLOO:-$BLOO}" lab gatekeeper --ras 127.0.0.1:27719 --route 0=127.0.0.1:27720 --ttl 3600 2> "$work/gk.err" > /dev/null &
    gk_pid=$!
    pids+=($!)
    "$BLOO" lab gateway --signalling 127.0.0.1:27720 --answer-delay 0 --codecs PCMU 2> /dev/null > /dev/null &
    pids+=($!)
}

# start_mirror SHARD: mirror-serve on tunnel port 27443+SHARD with its own port pools
# (below the ephemeral range, clear of the lab tools' ports); sets $mirror.
start_mirror() {
    local shard=${1:-0}
    local ras=$((5000 + shard * 5500)) sig=$((16000 + shard * 5500))
    taskset -c "$CORE" "$BLOO" mirror-serve --subscribers "$work/subscribers" --tcp "127.0.0.1:$((27443 + shard))" \
        --gatekeeper 127.0.0.1:27719 --public-ip 127.0.0.1 --ras-ports "$ras-$((ras + 5499))" \
        --signalling-ports "$sig-$((sig + 5499))" --rtp-ports 44000-47999 --ttl 3600 --no-discovery --rate 100000 \
        --burst 100000 --max-connections 100000 2> "$work/mirror$shard.err" > "$work/mirror$shard.out" &
    mirror=$!
    pids+=($mirror)
    for _ in $(seq 100); do grep -q '^ready' "$work/mirror$shard.out" 2>/dev/null && return; sleep 0.1; done
    echo "bench/mirror: mirror-serve did not start" >&2; cat "$work/mirror$shard.err" >&2; exit 1
}

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

start_lab
sleep 1

# 1. Setup/teardown rate.
start_mirror
"$BLOO" lab client --server 127.0.0.1:27443 --alias caller --count "$CALLERS" --secret "$secret" --call 0100 \
    --codecs PCMU --calls "$CALLS_EACH" --hangup-after 0 --exit-after-calls $((CALLERS * CALLS_EACH)) --duration 300 \
    > "$work/calls.out" 2> "$work/calls.err" || true
cat "$work/calls.out"
completed=$(sed -n 's/.*calls_completed=\([0-9]*\).*/\1/p' "$work/calls.out")
elapsed=$(sed -n 's/.*elapsed_ms=\([0-9]*\).*/\1/p' "$work/calls.out")
rate=$(( ${elapsed:-0} > 0 ? ${completed:-0} * 1000 / elapsed : 0 ))
cpu=$(awk '{print $14 + $15}' "/proc/$mirror/stat")
tick=$(getconf CLK_TCK)
cpu_capacity=$(( cpu > 0 ? ${completed:-0} * tick / cpu : 0 ))
echo "bench/mirror: $completed calls set up and torn down in ${elapsed} ms: $rate calls/s wall clock (mirror-serve pinned to core $CORE used $((cpu * 1000 / tick)) ms CPU: $cpu_capacity calls per CPU-second)"

# 2. Memory per registered client.
kill "$mirror"; wait "$mirror" 2>/dev/null || true
mirrors=()
bases=()
for s in $(seq 0 $((SHARDS - 1))); do
    start_mirror "$s"
    mirrors+=("$mirror")
    "$BLOO" lab client --server "127.0.0.1:$((27443 + s))" --alias "base${s}x" --count 1 --secret "$secret" --duration 3600 > /dev/null 2>&1 &
    pids+=($!)
done
registered_in() { grep -c mirror-registered "$work/mirror$1.err" || true; }
for s in $(seq 0 $((SHARDS - 1))); do
    for _ in $(seq 200); do [ "$(registered_in "$s")" -ge 1 ] && break; sleep 0.1; done
done
sleep 1
for s in $(seq 0 $((SHARDS - 1))); do bases+=("$(rss_kib "${mirrors[$s]}")"); done
t0=$(date +%s%N)
for s in $(seq 0 $((SHARDS - 1))); do
    "$BLOO" lab client --server "127.0.0.1:$((27443 + s))" --alias "reg${s}x" --count "$PER_SHARD" --secret "$secret" \
        --duration 3600 > /dev/null 2> "$work/reg$s.err" &
    pids+=($!)
done
# Until all are registered, or nothing moved for 15 s (clients send no PING: the
# appliance drops idle tunnels after 90 s, so the measurement must come before that).
registered=0
previous=-1
still=0
for _ in $(seq 3000); do
    registered=0
    for s in $(seq 0 $((SHARDS - 1))); do registered=$(( registered + $(registered_in "$s") - 1 )); done
    [ "$registered" -ge $((PER_SHARD * SHARDS)) ] && break
    if [ "$registered" -eq "$previous" ]; then still=$((still + 1)); else still=0; previous=$registered; fi
    [ "$still" -ge 75 ] && { echo "bench/mirror: registrations stalled at $registered"; break; }
    sleep 0.2
done
t1=$(date +%s%N)
reg_ms=$(( (t1 - t0) / 1000000 ))
sleep 2
growth=0
total_after=0
for s in $(seq 0 $((SHARDS - 1))); do
    after=$(rss_kib "${mirrors[$s]}")
    echo "bench/mirror: mirror-serve $s: VmRSS ${bases[$s]} KiB with 1 client, $after KiB with $(( $(registered_in "$s") - 1 )) more registered ($(grep -c mirror-no-public-face "$work/mirror$s.err" || true) without a public face)"
    growth=$(( growth + after - bases[s] ))
    total_after=$(( total_after + after ))
done
per=$(( registered > 0 ? growth / registered : 0 ))
perx10=$(( registered > 0 ? growth * 10 / registered : 0 ))
echo "bench/mirror: $registered clients registered through $SHARDS mirror-serve process(es) in ${reg_ms} ms ($(( reg_ms > 0 ? registered * 1000 / reg_ms : 0 )) registrations/s, tunnel authentication included); gatekeeper CPU $(awk '{print $14 + $15}' "/proc/$gk_pid/stat") ticks"
echo "bench/mirror: resident memory grew by $growth KiB for $registered clients: $((perx10 / 10)).$((perx10 % 10)) KiB per client (load $(cut -d' ' -f1-3 /proc/loadavg))"
echo "bench=mirror call_setups_per_s=$rate rss_kib_per_client=$per"
