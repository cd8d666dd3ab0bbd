#!/usr/bin/env bash
# Runs fuzz targets with libFuzzer for $FUZZ_SECONDS each (`make fuzz`).
#
#   fuzz/run.sh NAME...     (build/fuzz/bin/fuzz_NAME must be built)
#
# Each target runs, one at a time on one core, on a scratch copy of its
# corpus (build/fuzz/work/NAME; fuzz/corpus/NAME is never changed). On a
# crash, leak, timeout or out-of-memory, it stops and prints the input's
# path (build/fuzz/crashes/NAME/...). Scratch files of the targets go to a
# directory under /dev/shm (or build/fuzz/tmp), removed at the end.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
secs=${FUZZ_SECONDS:-60}
[ $# -gt 0 ] || { echo "usage: $0 NAME..." >&2; exit 2; }
if [ -d /dev/shm ] && [ -w /dev/shm ]; then base=/dev/shm; else base=$top/build/fuzz/tmp; mkdir -p "$base"; fi
scratch=$(mktemp -d "$base/vmcas-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
export TMPDIR=$scratch
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
for name in "$@"; do
  bin=build/fuzz/bin/fuzz_$name
  work=build/fuzz/work/$name
  crashes=build/fuzz/crashes/$name
  log=build/fuzz/logs/$name.log
  rm -rf "$work"; mkdir -p "$work" "$crashes" "$(dirname "$log")"
  cp fuzz/corpus/"$name"/* "$work"/ 2>/dev/null
  seeds=$(ls "$work" | wc -l)
  printf '%-12s %ss ... ' "$name" "$secs"
  "$bin" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
         -artifact_prefix="$crashes/" "$work" >"$log" 2>&1
  rc=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1)
  if [ $rc -ne 0 ]; then
    input=$(grep -oE "(Test unit written to|written to) [^ ]+" "$log" | tail -1 | awk '{print $NF}')
    echo "FAILED (exit $rc)"
    grep -E 'ERROR|runtime error|fuzz check failed|SUMMARY' "$log" | head -5 | sed 's/^/    /'
    echo "    input: ${input:-see $log}"
    echo "    log:   $log"
    echo "    replay: build/asan/fuzz/replay_$name ${input:-INPUT}   (after make test's build)"
    echo "    once fixed, keep it: cp ${input:-INPUT} fuzz/corpus/$name/   (named crash-*)"
    exit 1
  fi
  printf 'ok: %s runs, %s, corpus %s -> %s inputs\n' "${runs:-?}" "${cov:-cov: ?}" "$seeds" "$(ls "$work" | wc -l)"
done
