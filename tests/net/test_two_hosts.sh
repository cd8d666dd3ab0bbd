#!/usr/bin/env bash
# Two hosts and one server on 127.0.0.1: each host has its own key store
# (the second gets its keys by `vmcas login`), its own chunk cache and its
# own name; a parcel goes back and forth for several versions, byte for
# byte; what a host's cache holds is not fetched again; leases keep the
# hosts apart; a client killed mid-checkin and a server killed mid-checkin
# leave no partial version, and a retry sends only what is still missing.
. "$TOP/tests/lib.sh"
. "$TOP/tests/server/server_lib.sh"
cd "$TMPDIR"
export VMCAS_PASSPHRASE="correct horse battery staple"
vmcas -s st init >/dev/null
export VMCAS_TOKEN=$(vmcas -s st user add alice | tail -1)
ok "the server starts" start_server st serve.log
# hostA / hostB: a command as run on that host
# (exec: run in the background, $! is vmcas itself, so a kill reaches it)
hostA() { ( VMCAS_HOST=hostA VMCAS_KEYS=$TMPDIR/keysA VMCAS_CACHE=$TMPDIR/cacheA exec "$VMCAS" -q -s "$URL" "$@" ); }
hostB() { ( VMCAS_HOST=hostB VMCAS_KEYS=$TMPDIR/keysB VMCAS_CACHE=$TMPDIR/cacheB exec "$VMCAS" -q -s "$URL" "$@" ); }
jf() { json "$1" < "$2"; }

img new m 2000000 1; img new d 6000000 2
ok "host A creates the parcel on the server" hostA parcel create p --policy all --chunk-size 4K --memory-size 2000000 --disk-size 6000000
ok "host A checks in version 1" hostA checkin p --memory m --disk d --json
cp "$TMPDIR/last.out" ci1.json
check "it sent the data once: $(jf sent_data_bytes ci1.json) bytes" '[ "$(jf sent_data_bytes ci1.json)" -gt 5000000 ]'
check "and counted the wire: $(jf wire_bytes ci1.json) bytes" '[ "$(jf wire_bytes ci1.json)" -gt "$(jf sent_data_bytes ci1.json)" ]'
fails "host B has no key yet" "no key for parcel 'p'" hostB checkout p --memory b.m --disk b.d
ok "host B logs in: the keys come sealed from the server" env VMCAS_KEYS=$TMPDIR/keysB "$VMCAS" login "$URL"
cur_m=m cur_d=d
for v in 2 3 4 5; do
  if [ $((v % 2)) = 0 ]; then who=hostB other=hostA; else who=hostA other=hostB; fi
  $who checkout p --memory $who.m --disk $who.d --json > co.json 2>co.err
  check "$who checks out version $((v - 1)), byte for byte $(cat co.err)" "cmp -s $who.m $cur_m && cmp -s $who.d $cur_d"
  fails "$other's checkout is refused while $who holds the lease" "leased to host '$who'" $other checkout p --memory x.m --disk x.d
  cp $who.m m$v; cp $who.d d$v; img mutate m$v $v 20; img mutate d$v $((v + 10)) 20
  $who checkin p --memory m$v --disk d$v --json > ci.json 2>ci.err
  check "$who checks in version $v, sending $(jf sent_data_bytes ci.json) bytes of data $(cat ci.err)" \
    '[ "$(jf version ci.json)" = '$v' ] && [ "$(jf sent_data_bytes ci.json)" -lt 2000000 ]'
  cur_m=m$v cur_d=d$v
done
hostA checkout p --no-lease --memory a.m --disk a.d --json > co1.json
check "host A checks out the newest version byte for byte" 'cmp -s a.m m5 && cmp -s a.d d5'
hostA checkout p --no-lease --memory a.m --disk a.d --json > co2.json
check "a chunk fetched once is not fetched again ($(jf received_data_bytes co1.json) bytes, then $(jf received_data_bytes co2.json))" \
  '[ "$(jf received_data_bytes co2.json)" = 0 ] && [ "$(jf cache_hit_bytes co2.json)" -gt 0 ]'
hostB checkout p --no-lease --version 2 --memory b.m --disk b.d
check "every version is kept: version 2 on host B" 'cmp -s b.m m2 && cmp -s b.d d2'

# a client killed in the middle of a checkin
cp m5 m6; cp d5 d6; img mutate m6 60 300; img mutate d6 61 900
VMCAS_TEST_HOLD_COMMIT=$TMPDIR/hold VMCAS_HOST=hostA VMCAS_KEYS=$TMPDIR/keysA VMCAS_CACHE=$TMPDIR/cacheA \
  "$VMCAS" -q -s "$URL" checkin p --memory m6 --disk d6 --json > k.json 2>&1 & pid=$!
for i in $(seq 1 500); do [ -e hold ] && break; sleep 0.02; done
check "the checkin uploaded and waits before its commit" '[ -e hold ]'
kill -9 $pid; wait $pid 2>/dev/null; rm -f hold
vmcas -s st log p --json > log.json
check "no partial version on the server" '[ "$(jf latest_version log.json)" = 5 ]'
hostA checkin p --memory m6 --disk d6 --json > r.json
check "the retry commits version 6 and sends no data again ($(jf sent_data_bytes r.json) bytes)" \
  '[ "$(jf version r.json)" = 6 ] && [ "$(jf sent_data_bytes r.json)" = 0 ]'
hostB checkout p --memory b.m --disk b.d
check "host B gets version 6" 'cmp -s b.m m6 && cmp -s b.d d6'

# the server killed in the middle of a checkin, then restarted
cp m6 m7; cp d6 d7; img mutate m7 70 300; img mutate d7 71 900
VMCAS_TEST_HOLD_COMMIT=$TMPDIR/hold VMCAS_HOST=hostB VMCAS_KEYS=$TMPDIR/keysB VMCAS_CACHE=$TMPDIR/cacheB \
  "$VMCAS" -q -s "$URL" checkin p --memory m7 --disk d7 > k2.out 2>&1 & pid=$!
for i in $(seq 1 500); do [ -e hold ] && break; sleep 0.02; done
stop_server KILL
rm -f hold; wait $pid; rc=$?
check "the checkin fails clearly when the server dies before its commit (rc $rc): $(tail -1 k2.out)" \
  '[ $rc = 1 ] && grep -qiE "connect|server|reach" k2.out'
ok "the store verifies after the kill" vmcas -s st verify --full
ok "the server starts again" start_server st serve2.log
hostB checkin p --memory m7 --disk d7 --json > r2.json
check "the retry through the new server commits version 7" '[ "$(jf version r2.json)" = 7 ]'
hostA checkout p --no-lease --memory a.m --disk a.d
check "and host A reads it" 'cmp -s a.m m7 && cmp -s a.d d7'
ok "verify --full at the end" vmcas -s st verify --full
ok "the server stops on SIGTERM" stop_server TERM
done_testing
