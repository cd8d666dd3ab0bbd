#!/usr/bin/env bash
# A host cache far smaller than the parcel (--cache-size 1M, 16 MiB of
# 4 KiB chunks): a checkin's copies and a checkout's bulk fetches go to
# the cache's lanes and are evicted as they come; what comes out is the
# right bytes, and the cache keeps to its bound.
. "$TOP/tests/lib.sh"
. "$TOP/tests/server/server_lib.sh"
cd "$TMPDIR"

vmcas -s st init >/dev/null
export VMCAS_TOKEN=$(vmcas -s st user add alice | tail -1)
ok "serve starts" start_server st serve.log
"$TOP/build/tools/vc-testimg" random m 4194304 1
"$TOP/build/tools/vc-testimg" random d 12582912 2
on() { local cache=$1; shift; "$VMCAS" -q -s "$URL" --cache "$cache" --cache-size 1M "$@"; }
data_of() { "$VMCAS" -s "$1" stat --json 2>/dev/null | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["data_bytes"])'; }
ok "create (4 KiB chunks)" on c1 parcel create p --policy all --chunk-size 4K --compress none --memory-size 4194304 --disk-size 12582912
ok "checkin of 16 MiB through a cache of 1 MiB" on c1 checkin p --memory m --disk d
check "the checkin's cache keeps to its bound ($(data_of c1) bytes)" '[ "$(data_of c1)" -le 1048576 ]'
ok "checkout into an empty cache of 1 MiB" on c2 checkout p --no-lease --memory m2 --disk d2 --json
check "byte for byte" 'cmp -s m m2 && cmp -s d d2'
check "the whole parcel came from the server" '[ "$(json received_data_bytes < last.out)" -ge 16777216 ]'
check "the cache keeps to its bound ($(data_of c2) bytes)" '[ "$(data_of c2)" -le 1048576 ]'
ok "a second checkout through the same small cache" on c2 checkout p --no-lease --memory m3 --disk d3
check "byte for byte again" 'cmp -s m m3 && cmp -s d d3'
ok "the cache verifies" vmcas -s c2 verify
ok "stop" stop_server TERM
done_testing
