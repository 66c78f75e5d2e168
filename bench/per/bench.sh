#!/usr/bin/env bash
# PER codec throughput: decode + encode round trips per second on one core, of the shared
# oracle sample RRQ and Setup (the latter carrying fastStart), through the typed H.323 API
# (bytes -> typed message -> bytes, compared with the input every time); also an RRQ with
# tokens and an H.235 password hash, and the generic PERValue path side by side.
# Uses the static release build/bloo. Rates are per CPU-second of the pinned thread (wall
# rates are printed too). Last line:
#   bench=per rrq_roundtrips_per_s=N setup_roundtrips_per_s=M   (target RRQ >= 100000)
set -euo pipefail
cd "$(dirname "$0")/../.."
bloo=build/bloo
[ -x "$bloo" ] || { echo "bench per: $bloo missing, run 'make static'" >&2; exit 1; }
seconds=${PER_BENCH_SECONDS:-5}
# One core: pin to the last CPU so the figure does not depend on the scheduler.
cpu=$(( $(nproc) - 1 ))
taskset -c "$cpu" "$bloo" h323 bench --seconds "$seconds"
