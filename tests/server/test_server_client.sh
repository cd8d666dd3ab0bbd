#!/usr/bin/env bash
# The client over a server (-s URL --no-cache): create, checkin, checkout
# byte for byte, log, stat, leases; another user sees none of it.
. "$TOP/tests/lib.sh"
. "$TOP/tests/server/server_lib.sh"
cd "$TMPDIR"

vmcas -s st init >/dev/null
A=$(vmcas -s st user add alice | tail -1)
B=$(vmcas -s st user add bob | tail -1)
ok "serve starts" start_server st serve.log
mkimg m 2000000 m1; mkimg d 3000000 d1
as() { local t=$1; shift; VMCAS_TOKEN=$t "$VMCAS" -s "$URL" --no-cache "$@"; }
ok "create over the server" as "$A" parcel create p --policy all --chunk-size 16K --memory-size 2000000 --disk-size 3000000
ok "checkin over the server" as "$A" checkin p --memory m --disk d
ok "checkout over the server" as "$A" checkout p --memory m2 --disk d2
check "byte for byte" 'cmp m m2 && cmp d d2'
ok "log" as "$A" log p
fails "bob does not see p" "no parcel 'p'" as "$B" log p
fails "nor check it out" "no parcel 'p'" as "$B" checkout p --memory x --disk y
ok "bob's list" as "$B" parcel list
check "is empty of p" '! grep -q "^p " last.out'
fails "a wrong token" "refused the token" as 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff parcel list
ok "stop" stop_server TERM
ok "the store verifies" vmcas -s st verify --full
done_testing
