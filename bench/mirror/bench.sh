#!/usr/bin/env bash
# The mirror's benchmark, on 127.0.0.1 only, against the lab tools:
#  1. call setup + teardown rate through the appliance (mirror-serve pinned to one core,
#     one worker): N tunnel clients each place calls back to back and hang up at CONNECTED
#     (ARQ, Setup, fast start, Connect, ReleaseComplete, DRQ for every call);
#  2. resident memory per registered tunnelled client: VmRSS of mirror-serve with 1 client,
#     then with CLIENTS more (each registered to the gatekeeper through its own RAS port).
# Last line: bench=mirror call_setups_per_s=N rss_kib_per_client=M
set -euo pipefail
cd "$(dirname "$0")/../.."
BLOO=${BLOO:-build/bloo}
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
ulimit -Hn 200000 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"
# Each registered client holds 3 descriptors in mirror-serve (tunnel, RAS port, signalling
# listener): a machine whose hard limit is too low measures fewer clients (the ratio is per client).
fit=$(( ($(ulimit -n) - 500) / 3 ))
if [ "$CLIENTS" -gt "$fit" ]; then
    echo "bench/mirror: descriptor limit $(ulimit -n) allows $fit clients, not $CLIENTS: measuring $fit"
    CLIENTS=$fit
fi
[ -x "$BLOO" ] || { echo "bench/mirror: $BLOO missing (make static)" >&2; exit 1; }
echo "bench/mirror: $($BLOO version 2>/dev/null || echo "$BLOO"), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

secret=bench-secret-0123456789
{ for i in $(seq 1 "$CALLERS"); do echo "caller$i $secret"; done
  for i in $(seq 1 "$CLIENTS"); do echo "reg$i $secret"; done
  echo "base1 $secret"; } > "$work/subscribers"

start_lab() {
    "$BLOO" lab gatekeeper --ras 127.0.0.1:27719 --route 0=127.0.0.1:27720 --ttl 3600 2> "$work/gk.err" > /dev/null &
    pids+=($!)
    "$BLOO" lab gateway --signalling 127.0.0.1:27720 --answer-delay 0 --codecs PCMU 2> /dev/null > /dev/null &
    pids+=($!)
}

start_mirror() {
    taskset -c "$CORE" "$BLOO" mirror-serve --subscribers "$work/subscribers" --tcp 127.0.0.1:27443 \
        --gatekeeper 127.0.0.1:27719 --public-ip 127.0.0.1 --ras-ports 20000-31999 --signalling-ports 32000-43999 \
        --rtp-ports 44000-47999 --ttl 3600 --no-discovery --rate 100000 --burst 100000 --max-connections 100000 2> "$work/mirror.err" > "$work/mirror.out" &
    mirror=$!
    pids+=($mirror)
    for _ in $(seq 100); do grep -q '^ready' "$work/mirror.out" 2>/dev/null && return; sleep 0.1; done
    echo "bench/mirror: mirror-serve did not start" >&2; cat "$work/mirror.err" >&2; exit 1
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
kill "$mirror"; wait "$mirror" 2>/dev/null || true

# 2. Memory per registered client.
start_mirror
"$BLOO" lab client --server 127.0.0.1:27443 --alias base --count 1 --secret "$secret" --duration 3600 > /dev/null 2>&1 &
pids+=($!)
for _ in $(seq 200); do [ "$(grep -c mirror-registered "$work/mirror.err" || true)" -ge 1 ] && break; sleep 0.1; done
sleep 1
base=$(rss_kib "$mirror")
"$BLOO" lab client --server 127.0.0.1:27443 --alias reg --count "$CLIENTS" --secret "$secret" --duration 3600 > /dev/null 2>&1 &
pids+=($!)
registered=0
for _ in $(seq 1800); do
    registered=$(( $(grep -c mirror-registered "$work/mirror.err" || true) - 1 ))
    [ "$registered" -ge "$CLIENTS" ] && break
    sleep 0.2
done
sleep 2
after=$(rss_kib "$mirror")
per=$(( registered > 0 ? (after - base) / registered : 0 ))
perx10=$(( registered > 0 ? (after - base) * 10 / registered : 0 ))
echo "bench/mirror: VmRSS ${base} KiB with 1 client, ${after} KiB with $registered more registered: $((perx10 / 10)).$((perx10 % 10)) KiB per client"
echo "bench=mirror call_setups_per_s=$rate rss_kib_per_client=$per"
