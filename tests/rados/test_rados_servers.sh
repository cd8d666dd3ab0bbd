#!/usr/bin/env bash
# Several `vmcas serve` over one Ceph cluster (one ceph-mon, one ceph-osd on
# memstore, on 127.0.0.1, started here): two and then four servers with
# clients spread over them pass parcels between hosts; two checkins of one
# parcel through two servers at once give one version each or a clear
# refusal; a server killed mid-checkin loses nothing and the retry goes
# through another; an OSD that stops answering mid-checkout gives an error
# or a retry, never wrong data.
. "$TOP/tests/lib.sh"
. "$TOP/tests/server/server_lib.sh"
. "$TOP/tests/rados/ceph_lib.sh"
cd "$TMPDIR"
ceph_have || skip_all "ceph-mon and ceph-osd are not installed (scripts/deps.sh test)"
export VMCAS_PASSPHRASE="correct horse battery staple"
jf() { json "$1" < "$2"; }

# bluestore (in a sparse file): the OSD keeps its objects across the
# restart at the end
export CEPH_OBJECTSTORE=bluestore
ok "a one-node Ceph cluster starts" ceph_start vmcas
# timeout=4: an OSD that does not answer makes a request fail in seconds
S="rados://vmcas/srv?conf=$CEPH_CONF&timeout=4"
ok "the store is made" vmcas -s "$S" init
export VMCAS_TOKEN=$(vmcas -s "$S" user add alice --users users | tail -1)
urls=() pids=()
# serve N: starts server N over the store (URL in urls[N], pid in pids[N])
serve() { start_server "$S" "serve$1.log" --users users && urls[$1]=$URL pids[$1]=$SERVER_PID; }
# on HOST N CMD...: runs a vmcas command as host HOST through server N
on() { local h=$1 n=$2; shift 2
  ( VMCAS_HOST=$h VMCAS_KEYS=$TMPDIR/keys.$h VMCAS_CACHE=$TMPDIR/cache.$h exec "$VMCAS" -q -s "${urls[$n]}" "$@" ); }

ok "server 1 starts" serve 1
ok "server 2 starts" serve 2
img new m 3000000 1; img new d 9000000 2
ok "host A creates a parcel through server 1" on hostA 1 parcel create p --policy all --chunk-size 4K --memory-size 3000000 --disk-size 9000000
ok "host A checks in version 1 through server 1" on hostA 1 checkin p --memory m --disk d --json
ok "host B logs in through server 2: the key bundle is in the cluster" \
  env VMCAS_KEYS=$TMPDIR/keys.hostB "$VMCAS" login "${urls[2]}"
ok "host B checks out through server 2" on hostB 2 checkout p --memory b.m --disk b.d
check "byte for byte" 'cmp -s m b.m && cmp -s d b.d'
cp b.m m2; cp b.d d2; img mutate m2 5 20; img mutate d2 6 20
ok "host B checks in version 2 through server 2" on hostB 2 checkin p --memory m2 --disk d2 --json
check "sending only what changed ($(jf sent_data_bytes last.out) bytes)" '[ "$(jf sent_data_bytes last.out)" -lt 3000000 ]'
ok "host A checks out version 2 through server 1" on hostA 1 checkout p --no-lease --memory a.m --disk a.d
check "byte for byte" 'cmp -s m2 a.m && cmp -s d2 a.d'

# four servers, four hosts, each on its own server, all at once
ok "server 3 starts" serve 3
ok "server 4 starts" serve 4
for i in 1 2 3 4; do
  env VMCAS_KEYS=$TMPDIR/keys.h$i "$VMCAS" login "${urls[$i]}" >/dev/null 2>&1
  img new m.$i 1000000 $((10 + i)); img new d.$i 3000000 $((20 + i))
  on h$i $i parcel create q$i --policy all --chunk-size 4K --memory-size 1000000 --disk-size 3000000 >/dev/null 2>&1
done
bg=()
for i in 1 2 3 4; do on h$i $i checkin q$i --memory m.$i --disk d.$i > ci.$i.out 2>&1 & bg+=($!); done
wait "${bg[@]}"
check "four hosts check in at once through four servers" \
  '( for i in 1 2 3 4; do on h$i $i log q$i --json | grep -q "\"latest_version\": *1" || exit 1; done )'
# the hosts' keys meet in the user's bundle (pushed one after the other:
# the bundle is one object, the last push wins)
for i in 1 2 3 4; do env VMCAS_KEYS=$TMPDIR/keys.h$i "$VMCAS" login "${urls[$i]}" --push >/dev/null 2>&1; done
bg=()
for i in 1 2 3 4; do
  j=$(( i % 4 + 1 ))   # host i reads the parcel of host j through server i
  env VMCAS_KEYS=$TMPDIR/keys.h$i "$VMCAS" login "${urls[$i]}" >/dev/null 2>&1
  on h$i $i checkout q$j --no-lease --memory o.m.$i --disk o.d.$i > co.$i.out 2>&1 & bg+=($!)
done
wait "${bg[@]}"
check "each host checks out another host's parcel through its own server, byte for byte" \
  '( for i in 1 2 3 4; do j=$(( i % 4 + 1 )); cmp -s o.m.$i m.$j && cmp -s o.d.$i d.$j || exit 1; done )'

# two checkins of one parcel at once, through two servers: each is a
# version, or refused clearly; never two versions with one number
for h in hostC hostD; do env VMCAS_KEYS=$TMPDIR/keys.$h "$VMCAS" login "${urls[1]}" >/dev/null 2>&1; done
cp m2 m3; cp d2 d3; img mutate m3 7 10; cp m2 m4; cp d2 d4; img mutate d4 8 10
on hostC 3 checkin p --memory m3 --disk d3 > race3.out 2>&1 & p3=$!
on hostD 4 checkin p --memory m4 --disk d4 > race4.out 2>&1 & p4=$!
wait $p3; r3=$?; wait $p4; r4=$?
won=$(( (r3 == 0) + (r4 == 0) ))
on hostA 1 log p --json > race.json
check "two racing checkins: $won committed, latest is version $(jf latest_version race.json)" \
  '[ "$(jf latest_version race.json)" = $((2 + won)) ] && [ $won -ge 1 ]'
check "a checkin that lost says why" \
  '{ [ $r3 = 0 ] || grep -qiE "changed|leased|again" race3.out; } && { [ $r4 = 0 ] || grep -qiE "changed|leased|again" race4.out; }'

# a server killed in the middle of a checkin: the retry goes through another
latest=$(jf latest_version race.json)
cp m2 m5; cp d2 d5; img mutate m5 50 200; img mutate d5 51 600
VMCAS_TEST_HOLD_COMMIT=$TMPDIR/hold VMCAS_HOST=hostA VMCAS_KEYS=$TMPDIR/keys.hostA VMCAS_CACHE=$TMPDIR/cache.hostA \
  "$VMCAS" -q -s "${urls[1]}" checkin p --memory m5 --disk d5 > k.out 2>&1 & pid=$!
for i in $(seq 1 500); do [ -e hold ] && break; sleep 0.02; done
check "the checkin uploaded through server 1 and waits before its commit" '[ -e hold ]'
kill -9 "${pids[1]}"; wait "${pids[1]}" 2>/dev/null
rm -f hold; wait $pid; rc=$?
check "it fails clearly when server 1 dies (rc $rc): $(tail -1 k.out)" '[ $rc != 0 ] && grep -qiE "connect|server|reach" k.out'
on hostA 2 log p --json > log5.json
check "no partial version" '[ "$(jf latest_version log5.json)" = $latest ]'
ok "the retry through server 2 commits" on hostA 2 checkin p --memory m5 --disk d5 --json
cp last.out r.json
check "and sends no data again: the chunks were in the cluster ($(jf sent_data_bytes r.json) bytes)" \
  '[ "$(jf sent_data_bytes r.json)" = 0 ]'
ok "host B reads it through server 3" on hostB 3 checkout p --no-lease --memory b5.m --disk b5.d
check "byte for byte" 'cmp -s m5 b5.m && cmp -s d5 b5.d'

ok "gc through the cluster while servers run" vmcas -s "$S" gc --grace 0
ok "verify --full" vmcas -s "$S" verify --full
# across_osd HOST N WHAT AGAIN ACTION...: host HOST checks p out through
# server N while ACTION disturbs the OSD; that checkout fails clearly or
# gives the right bytes, and the next one (AGAIN names it) gives them
across_osd() {
  local h=$1 n=$2 what=$3 again=$4; shift 4
  co() { VMCAS_HOST=$h VMCAS_KEYS=$TMPDIR/keys.hostB VMCAS_CACHE=$TMPDIR/cache.$h \
    "$VMCAS" -q -s "${urls[$n]}" checkout p --no-lease --memory $h.m --disk $h.d; }
  co > $h.osd.out 2>&1 & local pid=$!
  sleep 0.3
  "$@"
  wait $pid; local rc=$?
  check "the checkout across $what failed clearly or finished right (rc $rc): $(tail -1 $h.osd.out)" \
    '{ [ '$rc' != 0 ] && [ '$rc' -lt 64 ] && grep -qiE "in time|cluster|server|timed|again" '$h'.osd.out; } || { [ '$rc' = 0 ] && cmp -s m5 '$h'.m && cmp -s d5 '$h'.d; }'
  ok "$again, the checkout gives the right bytes" co
  check "byte for byte" "cmp -s m5 $h.m && cmp -s d5 $h.d"
}
# the OSD stops answering in the middle of a checkout (SIGSTOP), then
# comes back
stop_and_start() { ceph_osd_stop; sleep 5; ok "the OSD answers again" ceph_osd_start; }
across_osd hostE 4 "the stopped OSD" "once the OSD answers again" stop_and_start
# the OSD is killed (-9) in the middle of a checkout and started again on
# its objects
across_osd hostF 3 "the restart" "after the restart" ok "the OSD is killed and started again" ceph_osd_restart
ok "verify --full after the restart" vmcas -s "$S" verify --full
for n in 2 3 4; do SERVER_PID=${pids[$n]}; ok "server $n stops on SIGTERM" stop_server TERM; done
done_testing
