#!/usr/bin/env bash
# The plain (unsanitized) build under valgrind: no leak, no invalid access,
# through init, create, checkin, checkout, verify, prune, gc and stat.
. "$TOP/tests/lib.sh"
command -v valgrind >/dev/null || skip_all "valgrind not installed"
V="valgrind -q --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect --error-exitcode=99 $VMCAS_VG"
export VMCAS_THREADS=2 VMCAS_INDEX_MAPSIZE=1G
S=$TMPDIR/store
img new m 300000 1; img new d 600000 2; cp d d2; img mutate d2 1 10
ok "valgrind: init" $V -s "$S" init
ok "valgrind: parcel create" $V -s "$S" parcel create p --policy group:g --chunk-size 8K --memory-size 300000 --disk-size 600000
ok "valgrind: checkin" $V -q -s "$S" checkin p --memory m --disk d --json
ok "valgrind: second checkin" $V -q -s "$S" checkin p --memory m --disk d2
ok "valgrind: create --from" $V -q -s "$S" parcel create q --policy delta --from p@1
ok "valgrind: checkout" $V -q -s "$S" checkout p --version 1 --memory o.m --disk o.d
check "valgrind: checkout is exact" 'cmp -s o.m m && cmp -s o.d d'
ok "valgrind: verify --full" $V -s "$S" verify --full
ok "valgrind: log, stat" sh -c "$V -s '$S' log p --json >/dev/null && $V -s '$S' stat --json >/dev/null"
ok "valgrind: prune, gc" sh -c "$V -s '$S' prune p --keep 1 >/dev/null && $V -q -s '$S' gc --grace 0 >/dev/null"
fails "valgrind: an error path" "no parcel" $V -s "$S" checkout nope --memory o.m --disk o.d
done_testing
