#!/usr/bin/env bash
# The analysis report as a person sees it: Debian's chromium renders
# index.html headless to a screenshot; the page must load every figure and
# raise no error. The report opens with the answers, and puts an HTML
# table beside the figures it belongs to. A figure removed is caught.
. "$(dirname "$0")/../lib.sh"
CHROME=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROME" ] || skip_all "no chromium (Debian package chromium)"
command -v gnuplot >/dev/null || skip_all "no gnuplot"
V=${VMCAS_PLAIN:-$VMCAS}
ok "synth a small trace" "$V" -q synth tr --parcels 3 --versions 3 --memory-size 256K --disk-size 768K
ok "analyze --report" "$V" -q analyze tr --chunk-sizes 4K,16K,64K --compress none,gzip --report rep
R=$TMPDIR/rep
# chrome ARGS...: headless chromium on the report, bounded in time
chrome() { timeout 120 "$CHROME" --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
  --user-data-dir="$TMPDIR/chrome-profile" --allow-file-access-from-files --virtual-time-budget=15000 \
  --enable-logging=stderr --v=0 "$@" "file://$R/index.html"; }
chrome --window-size=1400,4000 --screenshot="$TMPDIR/report.png" >"$TMPDIR/shot.out" 2>"$TMPDIR/shot.err"
check "chromium wrote a screenshot" "[ -s '$TMPDIR/report.png' ] && [ \$(stat -c %s '$TMPDIR/report.png') -gt 50000 ]"
chrome --dump-dom >"$TMPDIR/dom.html" 2>"$TMPDIR/dom.err"
check "the page loaded every figure" "grep -q 'data-figures=\"ok\"' '$TMPDIR/dom.html' || { grep -o 'data-figures=\"[^\"]*\"' '$TMPDIR/dom.html' >&2; false; }"
check "no page error" "! grep -q 'data-errors=' '$TMPDIR/dom.html' && ! grep -qi 'Uncaught' '$TMPDIR/dom.err' '$TMPDIR/shot.err'"
check "no resource failed to load" "! grep -q 'ERR_FILE_NOT_FOUND' '$TMPDIR/dom.err'"
# the page reads like a report
check "it opens with the answers" "grep -o '<h2[^>]*>[^<]*' '$R/index.html' | head -1 | grep -q 'The answers'"
check "answer 1: what each policy saves against Delta" "grep -q 'IP stores [0-9.-]*% less than Delta and ALL [0-9.-]*% less' '$R/index.html'"
check "answer 1: on the network too" "grep -q 'a checkin uploads on average' '$R/index.html'"
check "answer 2: the best chunk size, with and without compression" \
  "grep -q 'without compression, storage is smallest at' '$R/index.html' && grep -q 'with gzip, storage is smallest at' '$R/index.html'"
check "real tables, no preformatted dump" "[ \$(grep -c '<table>' '$R/index.html') -ge 4 ] && ! grep -q '<pre>' '$R/index.html'"
check "a table beside its figure" "grep -q '<div class=\"pair\">' '$R/index.html' && grep -A3 'id=\"fig11\"' '$R/index.html' | grep -q 'class=\"tables\"'"
for f in fig5 fig6 fig7a fig7b fig8 fig10 fig11 fig12 fig13; do
  check "$f has a one-line reading" "grep -o 'id=\"$f\".*</figcaption>' '$R/index.html' | grep -q '</strong> [A-Z]'"
done
# a figure missing: the page says so, and the check catches it
mv "$R/fig7b.svg" "$R/fig7b.svg.away"
chrome --dump-dom >"$TMPDIR/dom2.html" 2>/dev/null
check "a missing figure is caught" "grep -q 'data-figures=\"missing: fig7b.svg\"' '$TMPDIR/dom2.html'"
check "and the page says which" "grep -q 'This figure could not be loaded: fig7b.svg' '$TMPDIR/dom2.html'"
mv "$R/fig7b.svg.away" "$R/fig7b.svg"
# keep the picture for a person to look at
mkdir -p "$TOP/build/test-logs"; cp "$TMPDIR/report.png" "$TOP/build/test-logs/report.png" 2>/dev/null || true
done_testing
