#!/usr/bin/env bash
# Builds every fuzz target (fuzz/targets/*) with libFuzzer + AddressSanitizer
# and runs each for FUZZ_SECONDS (default 60), starting from its seed corpus
# fuzz/corpus/<Target>/. Findings land in fuzz/findings/<Target>/; each one
# becomes a regression test of the module it broke.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
only=${1:-}
scratch=.build-fuzz
flags=(--scratch-path "$scratch" -Xswiftc -sanitize=fuzzer,address)

targets=()
for dir in fuzz/targets/*/; do
    name=$(basename "$dir")
    [ -z "$only" ] || [ "$only" = "$name" ] || continue
    targets+=("$name")
done
[ ${#targets[@]} -gt 0 ] || { echo "fuzz: no target matches '$only'" >&2; exit 2; }

status=0
for name in "${targets[@]}"; do
    # The linker warns about exporting ASan's local symbols; that is harmless.
    BLOO_FUZZ=1 swift build "${flags[@]}" --product "$name" 2>&1 | grep -v "Cannot export local symbol" || true
    binary="$(BLOO_FUZZ=1 swift build "${flags[@]}" --show-bin-path)/$name"
    [ -x "$binary" ] || { echo "fuzz: $name did not build" >&2; exit 1; }
    work=$(mktemp -d)
    findings="fuzz/findings/$name"
    mkdir -p "$findings"
    [ -d "fuzz/corpus/$name" ] && cp -r "fuzz/corpus/$name/." "$work/"
    echo "fuzz: $name for ${seconds}s (seeds: $(ls "$work" | wc -l))"
    if ! "$binary" -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$findings/" \
            -rss_limit_mb=2048 -malloc_limit_mb=512 "$work" > "$work.log" 2>&1; then
        echo "fuzz: $name FOUND A CRASH, see $findings/ and $work.log" >&2
        tail -40 "$work.log" >&2
        status=1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work.log" | grep -o '[0-9]*$' || echo '?')
    echo "fuzz: $name executions=$runs seconds=$seconds"
    rm -rf "$work"
done
exit $status
