#!/usr/bin/env bash
# repair rebuilds index AND catalog from the packs alone: delete
# STORE/index/ entirely, repair, and every version of every parcel checks
# out byte for byte; versions a prune dropped do not come back.
. "$TOP/tests/lib.sh"
S=$TMPDIR/store
vmcas -s "$S" init >/dev/null
img new m 1000000 1; img new d 3000000 2
declare -A sums
for p in a:ip b:all c:group:eng d:delta; do
  name=${p%%:*} pol=${p#*:}
  vmcas -s "$S" parcel create $name --policy $pol --chunk-size 4K --memory-size 1000000 --disk-size 3000000 >/dev/null
  for v in 1 2 3 4; do
    cp m m.$name.$v; cp d d.$name.$v; img mutate m.$name.$v $((v * 3)) 5; img mutate d.$name.$v $((v * 5)) 9
    vmcas -q -s "$S" checkin $name --memory m.$name.$v --disk d.$name.$v >/dev/null
  done
done
ok "parcel create --from makes a copy" vmcas -q -s "$S" parcel create e --policy all --from b@2
ok "prune a to its 2 newest versions" vmcas -s "$S" prune a --keep 2
ok "gc frees what the pruned versions held" vmcas -q -s "$S" gc --grace 0
vmcas -s "$S" log a --json > log.before
rm -rf "$S/index"
fails "with the index gone, a command says so and what to run" "index is missing.*vmcas repair" vmcas -s "$S" checkout a --memory o.m --disk o.d
ok "repair rebuilds index and catalog from the packs" vmcas -s "$S" repair
check "it says what it rebuilt: $(grep rebuilt "$TMPDIR/last.out")" \
  'grep -q "rebuilt the catalog: 5 parcels, 15 versions (2 pruned ones left out)" "$TMPDIR/last.out"'
bad=0
for name in a b c d; do
  first=1; [ $name = a ] && first=3
  for v in $(seq $first 4); do
    vmcas -q -s "$S" checkout $name --version $v --no-lease --memory o.m --disk o.d || bad=1
    cmp -s o.m m.$name.$v && cmp -s o.d d.$name.$v || { echo "# $name@$v differs"; bad=1; }
  done
done
check "every version checks out byte for byte" '[ $bad = 0 ]'
vmcas -q -s "$S" checkout e --no-lease --memory o.m --disk o.d
check "so does the copy made with --from" 'cmp -s o.m m.b.2 && cmp -s o.d d.b.2'
fails "the pruned versions stay dropped" "has no version 2" vmcas -s "$S" checkout a --version 2 --no-lease --memory o.m --disk o.d
vmcas -s "$S" log a --json > log.after
check "the log of a lists the same versions" '[ "$(grep -c "\"version\":" log.before)" = "$(grep -c "\"version\":" log.after)" ]'
ok "verify --full after the repair" vmcas -s "$S" verify --full
ok "and the store takes new versions" vmcas -q -s "$S" checkin a --memory m --disk d
vmcas -q -s "$S" checkout a --memory o.m --disk o.d
check "which check out" 'cmp -s o.m m && cmp -s o.d d'
ok "a second repair of a healthy store changes nothing that matters" vmcas -s "$S" repair
vmcas -q -s "$S" checkout a --version 5 --no-lease --memory o.m --disk o.d
check "version 5 is still there" 'cmp -s o.m m && cmp -s o.d d'
fails "repair takes a store directory, not a server" "store directory only" vmcas -s http://127.0.0.1:9/ repair
done_testing
