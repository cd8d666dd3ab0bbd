#!/usr/bin/env bash
# prune and gc: old versions go, their chunks are freed and packs compacted,
# the versions kept are intact; stat reports what is stored.
. "$TOP/tests/lib.sh"
S=$TMPDIR/store
vmcas -s "$S" init >/dev/null
img new m 1000000 1; img new d 4000000 2
vmcas -s "$S" parcel create p --policy ip --chunk-size 4K --compress none --memory-size 1000000 --disk-size 4000000 >/dev/null
vmcas -s "$S" parcel create r --policy delta --chunk-size 16K --memory-size 1000000 --disk-size 4000000 >/dev/null
for v in 1 2 3 4 5; do
  cp m m$v; cp d d$v; img mutate m$v $v 90; img mutate d$v $((v + 10)) 90
  vmcas -q -s "$S" checkin p --memory m$v --disk d$v >/dev/null
  vmcas -q -s "$S" checkin r --memory m$v --disk d$v >/dev/null
done
st1=$(vmcas -s "$S" stat --json)
for f in data_bytes meta_bytes disk_bytes; do
  check "stat --json reports $f" '[ -n "$(echo "$st1" | json $f)" ] && [ "$(echo "$st1" | json $f)" -gt 0 ]'
done
d1=$(echo "$st1" | json disk_bytes)
ok "gc with nothing to free" vmcas -q -s "$S" gc --grace 0
ok "prune --keep 2" vmcas -s "$S" prune p --keep 2
grep -q "dropped 3 versions" "$TMPDIR/last.out"; check "prune says what it dropped" '[ $? = 0 ]'
vmcas -s "$S" prune r --keep 1 >/dev/null
fails "a pruned version is gone" "has no version 1" vmcas -s "$S" checkout p --version 1 --memory o.m --disk o.d
out=$(vmcas -s "$S" gc --grace 0 --json)
freed=$(echo "$out" | json chunks_freed)
check "gc frees the chunks of the pruned versions ($freed)" '[ "$freed" -gt 100 ]'
st2=$(vmcas -s "$S" stat --json); d2=$(echo "$st2" | json disk_bytes)
live=$(( $(echo "$st2" | json data_bytes) + $(echo "$st2" | json meta_bytes) )); idx=$(echo "$st2" | json index_bytes)
check "the store shrinks on disk ($d1 -> $d2)" '[ "$d2" -lt $((d1 * 4 / 5)) ]'
check "packs are compacted: dead space under half ($((d2 - idx)) bytes of packs for $live live)" '[ $((d2 - idx)) -le $((live * 3 / 2)) ]'
for v in 4 5; do
  vmcas -q -s "$S" checkout p --version $v --memory o.m --disk o.d
  check "version $v of p is intact after gc" 'cmp -s o.m m$v && cmp -s o.d d$v'
done
vmcas -q -s "$S" checkout r --memory o.m --disk o.d
check "the delta parcel's latest version is whole after gc" 'cmp -s o.m m5 && cmp -s o.d d5'
ok "verify --full after gc" vmcas -s "$S" verify --full
out=$(vmcas -s "$S" gc --grace 3600 --json)
check "a second gc frees nothing" '[ "$(echo "$out" | json chunks_freed)" = 0 ]'
# unreferenced chunks within the grace period stay (a checkin in flight)
ok "log lists the versions" vmcas -s "$S" log p
grep -qE '^ +5 ' "$TMPDIR/last.out"; check "log shows version 5" '[ $? = 0 ]'
ok "stat (table)" vmcas -s "$S" stat
ok "parcel list" vmcas -s "$S" parcel list
# a VM's parcel: its machine tree is kept by gc and walked by verify, in
# every version (a plain checkin carries it over)
head -c 300000 /dev/urandom > vmlinuz; head -c 200000 /dev/urandom > initrd
ok "a VM parcel" vmcas -s "$S" parcel create vm --policy all --chunk-size 4K --memory-size 16M --disk-size 1M --from-qemu vmlinuz,initrd
truncate -s 16M vm.m; truncate -s 1M vm.d
ok "a plain checkin of it (the machine goes on, without device state)" vmcas -s "$S" checkin vm --memory vm.m --disk vm.d
ok "prune to the newest" vmcas -s "$S" prune vm --keep 1
ok "gc --grace 0" vmcas -s "$S" gc --grace 0
ok "verify --full walks the machine" vmcas -s "$S" verify --full
ok "a workspace of version 2 holds the machine" vmcas -s "$S" checkout vm --no-lease --workspace ws-vm
check "with the kernel byte for byte" 'python3 -c "
import sys; m=open(\"ws-vm/machine\",\"rb\").read(); k=open(\"vmlinuz\",\"rb\").read(); sys.exit(0 if k in m else 1)"'
done_testing
