#!/usr/bin/env bash
# vmcas used directly on a RADOS store (a one-node Ceph cluster on
# 127.0.0.1 that this test starts): init, parcel, checkin, checkout, log,
# stat, verify, prune, gc, repair; every bad locator, a missing pool, a
# store not made yet and a cluster that is down get a clear error.
. "$TOP/tests/lib.sh"
. "$TOP/tests/rados/ceph_lib.sh"
cd "$TMPDIR"
ceph_have || skip_all "ceph-mon and ceph-osd are not installed (scripts/deps.sh test)"
export VMCAS_PASSPHRASE="correct horse battery staple"
jf() { json "$1" < "$2"; }

# locators that are wrong before any cluster is asked
fails "a locator without a pool" "no pool name" vmcas -s "rados://" stat
fails "a pool name with a slash-only prefix" "prefix" vmcas -s "rados://pool/" stat
fails "a pool name with odd characters" "no pool name, or not one of" vmcas -s "rados://po%ol" stat
fails "an unknown option" "unknown or bad option 'colour'" vmcas -s "rados://pool?colour=red" stat
fails "an option without a value" "is not NAME=VALUE" vmcas -s "rados://pool?conf" stat
fails "a timeout out of range" "timeout must be 1-3600" vmcas -s "rados://pool?timeout=0" stat
fails "a configuration file that is not there" "no Ceph configuration file $TMPDIR/nope.conf" \
  vmcas -s "rados://pool?conf=$TMPDIR/nope.conf" stat
fails "another kind of URL" "unknown kind of store.*rados://" vmcas -s "s3://bucket" stat

ok "a one-node Ceph cluster starts" ceph_start vmcas
S="rados://vmcas/cli?conf=$CEPH_CONF"

# a cluster that is down: a configuration naming a monitor nobody runs
sed "s/^mon host = .*/mon host = v1:127.0.0.1:$(_ceph_free_port)/" "$CEPH_CONF" > down.conf
start=$(date +%s)
fails "a cluster that is down is said so, within the timeout" "cannot reach the Ceph cluster" \
  vmcas -s "rados://vmcas?conf=$TMPDIR/down.conf&timeout=2" stat
check "and the error came within seconds ($(( $(date +%s) - start )) s)" '[ $(( $(date +%s) - start )) -lt 20 ]'
fails "a pool the cluster does not have" "has no pool 'nopool'.*ceph osd pool create" \
  vmcas -s "rados://nopool?conf=$CEPH_CONF" stat
fails "a store not made yet" "no vmcas store there.*init" vmcas -s "$S" stat

ok "init makes the store" vmcas -s "$S" init --json
check "it names the store id" 'grep -q "\"store_id\"" last.out'
fails "init twice is refused" "there is a vmcas store there already" vmcas -s "$S" init
ok "a second store in another prefix of the same pool" vmcas -s "rados://vmcas/other?conf=$CEPH_CONF" init

img new m 2000000 1; img new d 6000000 2
ok "a parcel is created" vmcas -s "$S" parcel create p --policy ip --chunk-size 4K --memory-size 2000000 --disk-size 6000000
vmcas -s "$S" parcel list > list.out
check "it is listed" 'grep -q "^p " list.out || grep -q "p" list.out'
fails "a parcel the other store does not have" "no parcel 'p'" vmcas -s "rados://vmcas/other?conf=$CEPH_CONF" log p
ok "version 1 is checked in" vmcas -s "$S" checkin p --memory m --disk d --json
cp last.out ci1.json
check "it stored the data ($(jf sent_data_bytes ci1.json) bytes)" '[ "$(jf sent_data_bytes ci1.json)" -gt 3000000 ]'
ok "it checks out byte for byte" vmcas -s "$S" checkout p --memory m.1 --disk d.1
check "the images are the same" 'cmp -s m m.1 && cmp -s d d.1'
fails "a second host is refused the lease" "leased to host" env VMCAS_HOST=other "$VMCAS" -s "$S" checkout p --memory x --disk y
cp m m2; cp d d2; img mutate m2 3 30; img mutate d2 4 30
ok "version 2 is checked in, giving the lease up" vmcas -s "$S" checkin p --memory m2 --disk d2 --json
cp last.out ci2.json
check "it sent less than the first ($(jf sent_data_bytes ci2.json) bytes)" \
  '[ "$(jf sent_data_bytes ci2.json)" -lt "$(jf sent_data_bytes ci1.json)" ]'
vmcas -s "$S" log p --json > log.json
check "the log has two versions" '[ "$(jf latest_version log.json)" = 2 ]'
ok "stat" vmcas -s "$S" stat --json
check "stat counts the data" '[ "$(json data_bytes < last.out)" -gt 3000000 ]'
ok "verify --full" vmcas -s "$S" verify --full
fails "verify --reindex is for a store directory" "store directory only.*vmcas repair" vmcas -s "$S" verify --reindex
ok "prune keeps the newest" vmcas -s "$S" prune p --keep 1
ok "gc --grace 0 frees what version 1 alone used" vmcas -s "$S" gc --grace 0 --json
cp last.out gc.json
check "it freed chunks ($(grep -o '"chunks_freed": *[0-9]*' gc.json))" '[ "$(json chunks_freed < gc.json)" -gt 0 ]'
ok "the store verifies after gc" vmcas -s "$S" verify --full
ok "version 2 still checks out" vmcas -s "$S" checkout p --no-lease --memory m.2 --disk d.2
check "byte for byte" 'cmp -s m2 m.2 && cmp -s d2 d.2'
ok "gc with the default grace frees nothing young" vmcas -s "$S" gc --json
check "nothing freed" '[ "$(json chunks_freed < last.out)" = 0 ]'

# a VM's parcel: its machine (kernel, initramfs) is a tree of the version
# that gc keeps and verify walks, like the images
# (in a store of its own: the damage below takes the first pack of "$S")
SV="rados://vmcas/vms?conf=$CEPH_CONF"
ok "a store for VMs in another prefix" vmcas -s "$SV" init
head -c 300000 /dev/urandom > vmlinuz; head -c 200000 /dev/urandom > initrd
ok "a VM parcel is made on RADOS" vmcas -s "$SV" parcel create vm --policy ip --chunk-size 4K --memory-size 16M --disk-size 1M --from-qemu vmlinuz,initrd
ok "gc --grace 0 beside it" vmcas -s "$SV" gc --grace 0
ok "verify --full walks its machine" vmcas -s "$SV" verify --full
ok "its workspace checks out, machine and all" vmcas -s "$SV" checkout vm --no-lease --workspace ws-vm
check "the machine holds the kernel byte for byte" 'grep -c . ws-vm/machine >/dev/null && python3 -c "
import sys; m=open(\"ws-vm/machine\",\"rb\").read(); k=open(\"vmlinuz\",\"rb\").read(); sys.exit(0 if k in m else 1)"'

# damage: a pack object removed behind vmcas's back
pack=$(rados -c "$CEPH_CONF" -p vmcas -N cli ls | grep '^pack/' | head -1)
rados -c "$CEPH_CONF" -p vmcas -N cli rm "$pack"
fails "verify finds the chunks whose pack is gone" "not there|not in the store" vmcas -s "$S" verify
fails "a checkout that needs them fails clearly, writing no wrong data" "gone|not in the store|verify" \
  vmcas -s "$S" checkout p --no-lease --memory m.3 --disk d.3
vmcas -s "$S" repair --json > repair.json 2>repair.err; rc=$?
check "repair drops the index entries whose bytes are gone ($(grep -o '"index_entries_dropped": *[0-9]*' repair.json))" \
  '[ "$(json index_entries_dropped < repair.json)" -gt 0 ]'
check "and its verify still names the version whose bytes are lost (rc $rc)" \
  '[ $rc = 1 ] && grep -q "of parcel .p. version 2 is not in the store" repair.json'
ok "repair again finds nothing more to drop" sh -c "'$VMCAS' -s '$S' repair --json > r2.json; [ \$(grep -o '\"index_entries_dropped\": *[0-9]*' r2.json | sed 's/.*: *//') = 0 ]"
ok "the store takes a new parcel after the damage" vmcas -s "$S" parcel create q --policy delta --chunk-size 4K --memory-size 2000000 --disk-size 6000000
ok "which checks in" vmcas -s "$S" checkin q --memory m2 --disk d2
ok "and out" vmcas -s "$S" checkout q --no-lease --memory m.4 --disk d.4
check "byte for byte" 'cmp -s m2 m.4 && cmp -s d2 d.4'

# the server's side of it
fails "a server on a RADOS store needs a users file" "give --users FILE" vmcas -s "$S" serve --listen 127.0.0.1:0
fails "user add needs it too" "give --users FILE" vmcas -s "$S" user add alice
ok "user add with --users" vmcas -s "$S" user add alice --users users
fails "--no-existence-oracle is refused on RADOS, clearly" "needs a store directory" \
  vmcas -s "$S" serve --listen 127.0.0.1:0 --users users --no-existence-oracle
done_testing
