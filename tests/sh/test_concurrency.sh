#!/usr/bin/env bash
# Two checkins of one parcel at once: one wins, the other fails clearly;
# checkins of different parcels and gc run side by side.
. "$TOP/tests/lib.sh"
S=$TMPDIR/store
B=${VMCAS_PLAIN:-$VMCAS}
"$B" -s "$S" init >/dev/null
img new m 4194304 1; img new d 16777216 2
for p in a b; do "$B" -s "$S" parcel create $p --policy all --chunk-size 4K --memory-size 4M --disk-size 16M >/dev/null; done
# deterministic: the parcel is leased to another host
"$B" -q -s "$S" checkout a --memory o.m --disk o.d 2>/dev/null   # no version yet: takes no lease
VMCAS_HOST=other "$B" -q -s "$S" checkin a --memory m --disk d --keep-lease >/dev/null
fails "checkin of a parcel leased to another host says so" "parcel 'a' is leased to host 'other'" vmcas -s "$S" checkin a --memory m --disk d
fails "and so does its checkout" "parcel 'a' is leased to host 'other'" vmcas -s "$S" checkout a --memory o.m --disk o.d
ok "an administrator breaks the lease" vmcas -s "$S" lease break a
VMCAS_HOST=other fails "the old holder's checkin is then refused, not merged" "lease on parcel 'a' was broken" \
  "$VMCAS" -s "$S" checkin a --memory m --disk d
ok "and this host checks in" vmcas -q -s "$S" checkin a --memory m --disk d
base=$("$B" -s "$S" log a --json | json latest_version)
# for real: two at once on one host, many times: the commit is atomic, so
# one wins and the other finds the parcel moved on
wins=0 losses=0 bad=0
for i in 1 2 3 4 5 6; do
  cp m m$i; cp d d$i; img mutate d$i $i 5
  "$B" -q -s "$S" checkin a --memory m$i --disk d$i >o1 2>e1 & p1=$!
  "$B" -q -s "$S" checkin a --memory m --disk d$i >o2 2>e2 & p2=$!
  wait $p1; r1=$?; wait $p2; r2=$?
  for r in "$r1:e1" "$r2:e2"; do
    if [ "${r%%:*}" = 0 ]; then wins=$((wins+1)); elif grep -q "changed during the checkin" "${r#*:}"; then losses=$((losses+1)); else bad=1; cat "${r#*:}"; fi
  done
done
latest=$("$B" -s "$S" log a --json | json latest_version)
echo "# $wins checkins won, $losses lost the race"
check "every loser failed with 'changed during the checkin', winners made consecutive versions" '[ $bad = 0 ] && [ $wins -ge 6 ] && [ "$latest" = $((base + wins)) ]'
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

# gc between a checkin's upload and its commit: the checkin found its chunks
# already in the store (left by a pruned version), gc then frees them; the
# commit must notice, fail cleanly, and a second try must work.
S2=$TMPDIR/store2
vmcas -s "$S2" init >/dev/null
img new x 1000000 31; img new y 1000000 32
for p in a b; do vmcas -s "$S2" parcel create $p --policy all --chunk-size 4K --memory-size 1000000 --disk-size 1000000 >/dev/null; done
vmcas -q -s "$S2" checkin a --memory x --disk x >/dev/null
vmcas -q -s "$S2" checkin a --memory y --disk y >/dev/null
vmcas -s "$S2" prune a --keep 1 >/dev/null      # x's chunks: indexed, unreferenced
VMCAS_TEST_HOLD_COMMIT=$TMPDIR/hold "$VMCAS" -q -s "$S2" checkin b --memory x --disk x --json >b.out 2>b.err & pid=$!
for i in $(seq 1 500); do [ -e "$TMPDIR/hold" ] && break; sleep 0.02; done
check "the checkin reached its commit" '[ -e "$TMPDIR/hold" ]'
ok "gc runs while the checkin waits" vmcas -q -s "$S2" gc --grace 0
rm -f "$TMPDIR/hold"; wait $pid; rc=$?
check "the checkin fails cleanly (rc $rc): $(cat b.err)" '[ $rc = 1 ] && grep -q "vanished during the checkin" b.err'
ok "nothing is broken" vmcas -s "$S2" verify --full
fails "and no version was committed" "has no version yet" vmcas -s "$S2" checkout b --memory o.m --disk o.d
ok "the checkin run again succeeds" vmcas -q -s "$S2" checkin b --memory x --disk x
vmcas -q -s "$S2" checkout b --memory o.m --disk o.d
check "and its version is whole" 'cmp -s o.m x && cmp -s o.d x'
ok "verify --full at the end" vmcas -s "$S2" verify --full
done_testing
