#!/usr/bin/env bash
# Two checkins of one parcel at once: one wins, the other fails clearly;
# checkins of different parcels and gc run side by side.
. "$TOP/tests/lib.sh"
S=$TMPDIR/store
B=${VMCAS_PLAIN:-$VMCAS}
"$B" -s "$S" init >/dev/null
img new m 4194304 1; img new d 16777216 2
for p in a b; do "$B" -s "$S" parcel create $p --policy all --chunk-size 4K --memory-size 4M --disk-size 16M >/dev/null; done
# deterministic: the parcel's lock is held
exec 9>"$S/locks/parcel-a"; flock -n 9
fails "checkin of a locked parcel says so" "parcel 'a' is busy" vmcas -s "$S" checkin a --memory m --disk d
exec 9>&-
# for real: two at once, many times
wins=0 losses=0 bad=0
for i in 1 2 3 4 5 6; do
  cp m m$i; cp d d$i; img mutate d$i $i 5
  "$B" -q -s "$S" checkin a --memory m$i --disk d$i >o1 2>e1 & p1=$!
  "$B" -q -s "$S" checkin a --memory m --disk d$i >o2 2>e2 & p2=$!
  wait $p1; r1=$?; wait $p2; r2=$?
  for r in "$r1:e1" "$r2:e2"; do
    if [ "${r%%:*}" = 0 ]; then wins=$((wins+1)); elif grep -q "is busy" "${r#*:}"; then losses=$((losses+1)); else bad=1; cat "${r#*:}"; fi
  done
done
latest=$("$B" -s "$S" log a --json | json latest_version)
echo "# $wins checkins won, $losses lost to the lock"
check "every loser failed with 'busy', winners made consecutive versions" '[ $bad = 0 ] && [ $wins -ge 6 ] && [ "$latest" = $wins ]'
# different parcels and gc side by side
"$B" -q -s "$S" checkin a --memory m --disk d1 > /dev/null & p1=$!
"$B" -q -s "$S" checkin b --memory m --disk d2 > /dev/null & p2=$!
( for i in 1 2 3; do "$B" -q -s "$S" gc >/dev/null 2>gcerr || grep -q busy gcerr || exit 1; done ) & p3=$!
wait $p1; r1=$?; wait $p2; r2=$?; wait $p3; r3=$?
check "checkins of two parcels at once both succeed (gc beside them: $r3)" '[ $r1 = 0 ] && [ $r2 = 0 ] && [ $r3 = 0 ]'
"$B" -q -s "$S" checkout b --memory o.m --disk o.d
check "and their data is intact" 'cmp -s o.m m && cmp -s o.d d2'
"$B" -q -s "$S" checkout a --memory o.m --disk o.d
check "the other parcel too" 'cmp -s o.m m && cmp -s o.d d1'
# a second gc at once is refused, not run twice
exec 9>"$S/locks/gc"; flock -n 9
fails "a second gc says another is running" "busy|locked" vmcas -s "$S" gc
exec 9>&-
ok "verify --full" vmcas -s "$S" verify --full
done_testing
