#!/usr/bin/env bash
# PER codec throughput: decode + encode round trips per second on one core, of an RRQ
# (with tokens and an H.235 password hash) and of a Setup carrying fastStart, through the
# typed H.323 API (bytes -> typed message -> bytes). Uses the static release build/bloo.
# Last line: bench=per rrq_roundtrips_per_s=N setup_roundtrips_per_s=M (target RRQ >= 100000).
set -euo pipefail
cd "$(dirname "$0")/../.."
bloo=build/bloo
[ -x "$bloo" ] || { echo "bench per: $bloo missing, run 'make static'" >&2; exit 1; }
seconds=${PER_BENCH_SECONDS:-5}
# One core: pin to the last CPU so the figure does not depend on the scheduler.
cpu=$(( $(nproc) - 1 ))
taskset -c "$cpu" "$bloo" h323 bench --seconds "$seconds"
