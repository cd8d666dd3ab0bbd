#!/usr/bin/env bash
# The conformance suite of the store interface on the RADOS back end, over
# a one-node Ceph cluster (one ceph-mon, one ceph-osd on memstore, on
# 127.0.0.1) that this test starts and stops: the same cases that
# tests/backend/test_backend_conformance runs on the local back end.
. "$TOP/tests/lib.sh"
. "$TOP/tests/rados/ceph_lib.sh"
cd "$TMPDIR"
SUITE=$TOP/build/asan/tests/backend/test_backend_conformance
[ -x "$SUITE" ] || skip_all "the conformance suite is not built"
ceph_have || skip_all "ceph-mon and ceph-osd are not installed (scripts/deps.sh test)"
ok "a one-node Ceph cluster starts" ceph_start vmcas
VMCAS_CONFORMANCE_RADOS="rados://vmcas/conf?conf=$CEPH_CONF" "$SUITE" > suite.out 2>&1
rc=$?
while IFS= read -r line; do
  case "$line" in
    "ok "*) _n=$((_n+1)); echo "ok $_n - rados: ${line#ok * - }" ;;
    "not ok "*) _n=$((_n+1)); echo "not ok $_n - rados: ${line#not ok * - }"; _failed=1 ;;
    "#"*) echo "$line" ;;
  esac
done < suite.out
[ $rc = 0 ] || tail -40 suite.out | sed 's/^/# /'
check "the suite ran on the RADOS back end and exited 0 (rc $rc)" '[ $rc = 0 ] && [ "$(grep -c "^ok" suite.out)" -ge 13 ]'
done_testing
