#!/usr/bin/env bash
# Runs every benchmark script bench/*.sh (except this one) with the
# optimised build in build/bench. Each prints its figures and the ratio to
# a baseline measured in the same run.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
export VMCAS_BENCH="$top/build/bench/vmcas" BENCH_BIN="$top/build/bench/bin" TOP="$top"
rc=0
for s in "$top"/bench/*.sh; do
  [ "$(basename "$s")" = run.sh ] && continue
  [ -n "${BENCH:-}" ] && [[ "$s" != *${BENCH}* ]] && continue
  echo "== $(basename "$s" .sh)"
  bash "$s" || rc=1
done
exit $rc
