#!/usr/bin/env bash
# The checkin pipeline (issue 12): workers map pieces of the image (or
# pread them, VMCAS_NO_MMAP), a thread reads ahead (VMCAS_NO_RA turns it
# off), and the previous version's key table is built on its own thread;
# whichever way, the same version comes out. checkin --compress zstd:LEVEL
# (parsing, bad levels, round trip); stat's breakdown of the bytes on disk.
. "$TOP/tests/lib.sh"
S=$TMPDIR/store
vmcas -s "$S" init >/dev/null
# several batches of 8 MiB, and sizes that are not a multiple of a chunk
M=3000001 D=21000000
img new m $M 21; img new d $D 22
mk() { vmcas -s "$S" parcel create "$1" --policy all --chunk-size "$2" --compress "$3" --memory-size $M --disk-size $D >/dev/null; }
ci() { local p=$1; shift; vmcas -q -s "$S" checkin "$p" --memory m --disk d --json "$@"; }
co_same() { vmcas -q -s "$S" checkout "$1" --version "$2" --memory o.m --disk o.d >/dev/null && cmp -s o.m m && cmp -s o.d d; }

# the same parcel content whichever way the workers read, with 1 or 2 threads
for cs in 4K 512K; do
  mk "a$cs" $cs zstd
  n1=$(ci "a$cs" | json new_chunks)
  check "first checkin at $cs stores chunks ($n1)" '[ "$n1" -gt 0 ]'
  ok "checkout of the mapped checkin at $cs is the image" co_same "a$cs" 1
  for env in VMCAS_NO_MMAP=1 VMCAS_NO_RA=1 VMCAS_THREADS=1 "VMCAS_NO_MMAP=1 VMCAS_THREADS=1"; do
    n=$(env $env "$VMCAS" -q -s "$S" checkin "a$cs" --memory m --disk d --json | json new_chunks)
    check "unchanged checkin at $cs with $env stores nothing ($n)" '[ "$n" = 0 ]'
  done
done
# a change: only the changed chunks are new, the same with or without mmap
cp d d.orig; img mutate d 5 2
a=$(VMCAS_NO_MMAP=1 ci a4K | json new_chunks)
cp d.orig d; img mutate d 5 2
b=$(ci a512K | json new_chunks)
check "a 2 % change stores some chunks ($a at 4K, $b at 512K)" '[ "$a" -gt 0 ] && [ "$b" -gt 0 ]'
ok "checkout of the changed version is the image" co_same a4K 6
# a page moved elsewhere is found in the previous version's key table
cp m m.orig
dd if=m.orig of=m bs=4096 skip=3 seek=500 count=1 conv=notrunc 2>/dev/null
n=$(ci a4K | json new_chunks)
check "a moved page is found by key, not stored again ($n new)" '[ "$n" = 0 ]'
ok "checkout with the moved page is the image" co_same a4K 7
cp m.orig m

# --compress zstd:LEVEL
mk z4K 4K zstd
ok "checkin --compress zstd:19" vmcas -q -s "$S" checkin z4K --memory m --disk d --compress zstd:19
ok "checkout of a zstd:19 version is the image" co_same z4K 1
ok "checkin --compress zstd (the default level)" vmcas -q -s "$S" checkin z4K --memory m --disk d --compress zstd
for bad in zstd:0 zstd:20 zstd:-1 zstd: zstd:3x zstd:+3 gzip none lz4; do
  fails "checkin --compress $bad is refused" "invalid compression '" \
    vmcas -q -s "$S" checkin z4K --memory m --disk d --compress "$bad"
done
rc=0; vmcas -q -s "$S" checkin z4K --memory m --disk d --compress zstd:0 >/dev/null 2>&1 || rc=$?
check "a bad level is a usage error (exit 2, got $rc)" '[ "$rc" = 2 ]'
mk n4K 4K none
fails "a zstd level on a parcel without zstd is refused" "compressed with none" \
  vmcas -q -s "$S" checkin n4K --memory m --disk d --compress zstd:5
v=$(vmcas -s "$S" log n4K --json | grep -c '"version"' || true)
check "the refused checkin stored no version" '[ "$v" = 0 ]'
# a level changes only what new chunks cost: less or equal at 19 than at 1
mk l1 4K zstd; mk l19 4K zstd
img new m1 $M 31; img new d1 $D 32
b1=$(vmcas -q -s "$S" checkin l1 --memory m1 --disk d1 --compress zstd:1 --json | json new_bytes)
b19=$(vmcas -q -s "$S" checkin l19 --memory m1 --disk d1 --compress zstd:19 --json | json new_bytes)
check "zstd:19 stores no more than zstd:1 ($b19 <= $b1)" '[ "$b19" -le "$b1" ]'

# stat: where the bytes on disk go
j=$(vmcas -s "$S" stat --json)
sum=0
for f in sealed_data_bytes keyring_bytes record_header_bytes pack_other_bytes; do
  x=$(echo "$j" | tr -d '\n ' | grep -o "\"$f\":[0-9]*" | cut -d: -f2)
  check "stat --json breakdown has $f ($x)" '[ -n "$x" ]'
  sum=$((sum + ${x:-0}))
done
ib=$(echo "$j" | tr -d '\n ' | grep -o '"breakdown":{[^}]*}' | grep -o '"index_bytes":[0-9]*' | cut -d: -f2)
disk=$(echo "$j" | json disk_bytes); data=$(echo "$j" | json data_bytes)
check "the breakdown sums to disk_bytes ($sum + $ib = $disk)" '[ $((sum + ib)) = "$disk" ]'
sd=$(echo "$j" | tr -d '\n ' | grep -o '"sealed_data_bytes":[0-9]*' | cut -d: -f2)
check "sealed data is data_bytes ($sd = $data)" '[ "$sd" = "$data" ]'
vs=$(echo "$j" | tr -d '\n ' | grep -o '"breakdown":{[^}]*}' | grep -o '"versions":[0-9]*' | cut -d: -f2)
check "the breakdown counts the version records ($vs)" '[ "$vs" -ge 10 ]'
vmcas -s "$S" stat > st.txt
check "stat prints where the bytes go" 'grep -q "on disk: sealed data .* keyring nodes .* record headers" st.txt && grep -q "dead space) .* index .* version records" st.txt'
done_testing
