#!/usr/bin/env bash
# The conformance suite of the store interface on the remote back end
# (a real `vmcas serve` on 127.0.0.1) and on the host cache in front of it:
# the same cases that tests/backend/test_backend_conformance runs on the
# local back end and its cache.
. "$TOP/tests/lib.sh"
. "$TOP/tests/server/server_lib.sh"
cd "$TMPDIR"
SUITE=$TOP/build/asan/tests/backend/test_backend_conformance
[ -x "$SUITE" ] || skip_all "the conformance suite is not built"
vmcas -s st init >/dev/null
# lease breaking is an administrator's call: the suite runs as one
tok=$(vmcas -s st user add root --admin | tail -1)
ok "the server starts" start_server st serve.log
VMCAS_CONFORMANCE_URL=$URL VMCAS_TOKEN=$tok VMCAS_CONFORMANCE_BACKENDS=remote,cache+remote "$SUITE" > suite.out 2>&1
rc=$?
# its TAP lines, numbered into this test's
while IFS= read -r line; do
  case "$line" in
    "ok "*) _n=$((_n+1)); echo "ok $_n - remote: ${line#ok * - }" ;;
    "not ok "*) _n=$((_n+1)); echo "not ok $_n - remote: ${line#not ok * - }"; _failed=1 ;;
    "#"*) echo "$line" ;;
    *) [ -n "$line" ] && echo "# $line" ;;
  esac
done < suite.out
check "the suite ran on both back ends and exited 0 (rc $rc)" '[ $rc = 0 ] && [ "$(grep -c "^ok" suite.out)" -ge 20 ]'
# (the suite's versions name roots it never stored, so no verify here)
check "the server still answers after the suite" '[ "$(req "$tok" GET /v1/store)" = 200 ]'
ok "the server stops on SIGTERM" stop_server TERM
done_testing
