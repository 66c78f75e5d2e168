#!/usr/bin/env bash
# Relay benchmark: bloo relay vs the C reference relay (bench/relay/refrelay.c) vs
# rtpengine in userspace, pinned, same load, same run. See run.py for the method.
# Needs build/bloo (make static), gcc, taskset, rtpengine (scripts/deps.sh).
# Knobs: REPS, TRIAL_SECONDS, STREAMS=1,100,1000, RELAYS=bloo,cref,rtpengine,
# CORE_SHARE (0.5) and PART_CORE=0 (no half-core measurement), BENCH_VERBOSE=1.
set -euo pipefail
cd "$(dirname "$0")"
# 1000 streams need about 4000 descriptors per relay.
ulimit -n 65536 2>/dev/null || true
exec python3 run.py
