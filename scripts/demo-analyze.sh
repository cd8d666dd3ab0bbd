#!/usr/bin/env bash
# Demo of vmcas analyze: writes a small synthetic enterprise trace into
# DIR/trace (vmcas synth, default options: 6 parcels x 6 versions of a 4 MiB
# memory and a 12 MiB disk image), analyses it (tables on stdout) and writes
# DIR/analysis.json and the report DIR/report/index.html.
# Usage: scripts/demo-analyze.sh DIR     (takes a few seconds)
set -euo pipefail
dir=${1:?usage: scripts/demo-analyze.sh DIR}
top=$(cd "$(dirname "$0")/.." && pwd)
vmcas=${VMCAS_BIN:-$top/build/vmcas}
if [ ! -x "$vmcas" ]; then
  if [ -f "$top/Makefile" ]; then make -C "$top" build/vmcas >/dev/null; else vmcas=$(command -v vmcas); fi
fi
mkdir -p "$dir"
if [ ! -f "$dir/trace/manifest.tsv" ]; then
  echo "\$ vmcas synth $dir/trace"
  "$vmcas" synth "$dir/trace"
fi
echo "\$ vmcas analyze $dir/trace --json $dir/analysis.json --report $dir/report"
"$vmcas" analyze "$dir/trace" --json "$dir/analysis.json" --report "$dir/report"
