#!/usr/bin/env bash
# Runs every benchmark suite (bench/<suite>/bench.sh) in name order, prints the
# machine's load before and after each, and collects the machine-readable
# `bench=...` lines at the end. BENCH_ONLY=<suite> runs one suite.
set -euo pipefail
cd "$(dirname "$0")/.."
summary=$(mktemp)
status=0
for script in bench/*/bench.sh; do
    [ -e "$script" ] || continue
    suite=$(basename "$(dirname "$script")")
    [ -z "${BENCH_ONLY:-}" ] || [ "$BENCH_ONLY" = "$suite" ] || continue
    echo "== bench $suite  (load before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores)"
    if ! bash "$script" | tee -a "$summary"; then
        echo "bench: $suite failed" >&2
        status=1
    fi
    echo "== bench $suite done (load after: $(cut -d' ' -f1-3 /proc/loadavg))"
done
echo
echo "== summary"
grep '^bench=' "$summary" || echo "(no benchmark suite produced a result line)"
rm -f "$summary"
exit $status
