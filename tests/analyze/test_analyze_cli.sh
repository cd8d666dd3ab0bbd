#!/usr/bin/env bash
# vmcas synth and vmcas analyze as a user runs them: a deterministic trace,
# the tables, the JSON (the same whatever the thread count), progress and
# its silencing, the report with every figure, and a clean valgrind run.
. "$TOP/tests/lib.sh"
cd "$TMPDIR" || exit 1

S=(--parcels 3 --versions 3 --memory-size 300000 --disk-size 700001 --days 20 --gold-images 2 -q)
ok "synth a small trace" vmcas synth tr --seed 7 "${S[@]}"
check "manifest written" '[ -f tr/manifest.tsv ]'
check "9 versions listed" '[ "$(grep -c "\.mem" tr/manifest.tsv)" = 9 ]'
check "sizes not multiples of the chunk size" '[ "$(stat -c %s tr/*/v*.disk | sort -u)" = 700001 ]'
ok "synth the same seed again" vmcas synth tr2 --seed 7 "${S[@]}"
check "same seed, same bytes" 'diff -r tr tr2 >/dev/null'
ok "synth another seed" vmcas synth tr3 --seed 8 "${S[@]}"
check "another seed, other bytes" '! diff -rq tr tr3 >/dev/null'
fails "synth refuses a non-empty directory" "is not empty" vmcas synth tr -q
ok "synth --help" vmcas synth --help
ok "analyze --help" vmcas analyze --help

ok "analyze with three compressions" vmcas analyze tr -q --json out1.json --chunk-sizes 4K,16K,64K \
  --compress none,gzip,zstd --threads 1
check "storage table printed" 'grep -q "^Storage on day" last.out'
check "upload table printed" 'grep -q "^Upload per checkin" last.out'
check "demand-fetch table printed" 'grep -q "^Demand-fetch download" last.out'
check "complete-fetch table printed" 'grep -q "^Complete-fetch download" last.out'
check "one table row per chunk size and compression" '[ "$(grep -c "^16 KiB *zstd" last.out)" = 4 ]'
echo "old contents" > out3.json
ok "analyze with three threads" vmcas analyze tr -q --json out3.json --chunk-sizes 4K,16K,64K \
  --compress zstd,none,gzip --threads 3
check "JSON identical whatever the threads and option order" 'cmp -s out1.json out3.json'
check "JSON has the spec's keys" 'grep -q "\"chunk_sizes\": \[4096, 16384, 65536\]" out1.json &&
  grep -q "\"compressions\": \[\"none\", \"gzip\", \"zstd\"\]" out1.json &&
  grep -q "\"storage\": \[" out1.json && grep -q "\"upload\": \[" out1.json && grep -q "\"download\": \[" out1.json'
if command -v python3 >/dev/null; then
  check "JSON parses, with a row for every day, policy, size and compression" 'python3 -c "
import json
d = json.load(open(\"out1.json\"))
days = max(r[\"day\"] for r in d[\"storage\"]) + 1
assert len(d[\"storage\"]) == days * 3 * 3 * 3
assert len(d[\"upload\"]) == 6 * 3 * 3 * 3 and len(d[\"download\"]) == 6 * 7 * 3 * 3
"'
fi

VMCAS_PROGRESS=1 "$VMCAS" analyze tr --chunk-sizes 4K >/dev/null 2>prog.err
check "progress on stderr: bytes, rate" 'grep -qE "analyze: [0-9.]+ MiB, [0-9.]+ [KMG]iB/s" prog.err'
VMCAS_PROGRESS=1 "$VMCAS" analyze tr --chunk-sizes 4K --quiet >/dev/null 2>q1.err
check "--quiet silences progress" '[ ! -s q1.err ]'
VMCAS_PROGRESS=1 "$VMCAS" -q analyze tr --chunk-sizes 4K >/dev/null 2>q2.err
check "global -q silences progress" '[ ! -s q2.err ]'

ok "synth a parcel with one version" vmcas synth one --parcels 1 --versions 1 --memory-size 10000 --disk-size 0 -q
ok "analyze a trace without checkins" vmcas analyze one -q --json one.json
check "says there is no upload" 'grep -q "no upload or download" last.out'

if command -v gnuplot >/dev/null; then
  ok "report" vmcas analyze tr -q --report rep --chunk-sizes 4K,8K,128K
  figs="fig5 fig6 fig7a fig7b fig8 fig10 fig11 fig12 fig13"
  all_drawn() { for f in $figs; do [ -s "rep/$f.svg" ] && [ "$(head -c 4 "rep/$f.png" | tail -c 3)" = PNG ] || return 1; done; }
  all_shown() { for f in $figs; do grep -q "src=\"$f.svg\"" rep/index.html || return 1; done; }
  check "every figure drawn as SVG and PNG" all_drawn
  check "index.html shows every figure" all_shown
  check "index.html has the tables" 'grep -q "Storage on day" rep/index.html'
  check "gnuplot said nothing" '[ ! -s rep/gnuplot.log ]'
  fails "report without gnuplot names the package" "gnuplot not found: install Debian's gnuplot-nox" \
    /usr/bin/env PATH=/nonexistent "$VMCAS" analyze tr -q --report rep2 --chunk-sizes 4K
  check "without gnuplot, the data and index.html are still written" '[ -s rep2/index.html ] && [ -s rep2/fig56.dat ]'
  ok "report of a trace without checkins" vmcas analyze one -q --report rep1
  check "figures without events are left out" '[ -s rep1/fig5.png ] && ! grep -q fig10 rep1/index.html'
fi

if command -v valgrind >/dev/null && [ -x "${VMCAS_VG:-}" ]; then
  ok "synth under valgrind: no error, no leak" valgrind -q --leak-check=full --errors-for-leak-kinds=all \
    --error-exitcode=99 "$VMCAS_VG" synth vg --parcels 2 --versions 3 --memory-size 40000 --disk-size 90001 -q
  ok "analyze under valgrind: no error, no leak" valgrind -q --leak-check=full --errors-for-leak-kinds=all \
    --error-exitcode=99 "$VMCAS_VG" analyze vg -q --chunk-sizes 4K,8K --compress none,gzip,zstd --threads 2 --json vg.json
fi
done_testing
