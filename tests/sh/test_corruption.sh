#!/usr/bin/env bash
# A flipped byte in a pack or in the index is found by verify --full, which
# names the chunk and the versions it breaks; checkout of an affected
# version fails naming the chunk and writes nothing; others still work.
. "$TOP/tests/lib.sh"
S=$TMPDIR/store
vmcas -s "$S" init >/dev/null
img new m 300000 1; img new d 500000 2; cp d d2; img mutate d2 3 20
vmcas -s "$S" parcel create p --policy ip --chunk-size 4K --compress none --memory-size 300000 --disk-size 500000 >/dev/null
vmcas -s "$S" parcel create q --policy all --chunk-size 4K --compress none --memory-size 300000 --disk-size 500000 >/dev/null
vmcas -q -s "$S" checkin p --memory m --disk d >/dev/null
vmcas -q -s "$S" checkin p --memory m --disk d2 >/dev/null
vmcas -q -s "$S" checkin q --memory m --disk d >/dev/null
ok "verify --full on a clean store" vmcas -s "$S" verify --full
cp -a "$S" "$TMPDIR/clean"
restore() { rm -rf "$S"; cp -a "$TMPDIR/clean" "$S"; }

# 1. a byte in the data of a chunk of parcel q (the all pool)
pack=$(ls -S "$S"/packs/*/*.pack | head -1)
all_pack=$(grep -l . "$S"/packs/*/*.pack | while read f; do echo "$(stat -c %s "$f") $f"; done | sort -n | tail -1 | cut -d' ' -f2)
size=$(stat -c %s "$all_pack")
img flip "$all_pack" $((size - 1000))
fails "verify --full finds a flipped data byte" "DAMAGE: chunk [0-9a-f]{64}" vmcas -s "$S" verify --full
grep -q "breaks parcel" "$TMPDIR/last.out"; check "and names the parcel and version it breaks" '[ $? = 0 ]'
grep DAMAGE "$TMPDIR/last.out" | head -3 | sed 's/^/# /'
victim=$(grep -o "breaks parcel [a-z]* version [0-9]*" "$TMPDIR/last.out" | head -1)
vp=$(echo "$victim" | awk '{print $3}'); vv=$(echo "$victim" | awk '{print $5}')
fails "checkout of the broken version fails naming the chunk" "(chunk|keyring node) [0-9a-f]{64}.*(damaged|does not match)" vmcas -q -s "$S" checkout "$vp" --version "$vv" --memory o.m --disk o.d
check "and writes no file" '[ ! -e o.m ] && [ ! -e o.d ] && [ -z "$(ls | grep vmcas-)" ]'
restore

# 1b. a byte in a data chunk of the all pool: the message of the worker
# that found it reaches the user whatever the number of threads
all_dir=$(dirname "$(grep -lx "name all" "$S"/packs/*/domain)")
img flip "$(ls "$all_dir"/*.pack | head -1)" 4000
for t in 1 2 4; do
  VMCAS_THREADS=$t fails "with $t worker threads, checkout names the parcel, version, chunk and offset" \
    "parcel 'q' version 1:.*chunk [0-9a-f]{64} \(chunk [0-9]+, offset [0-9]+ of the image\)" \
    vmcas -q -s "$S" checkout q --no-lease --memory o.m --disk o.d
done
restore

# 2. a byte in a record header
img flip "$pack" 100
fails "verify finds a damaged record header" "DAMAGE" vmcas -s "$S" verify
restore

# 2b. a pack cut short (a disk that lost its tail)
size=$(stat -c %s "$all_pack"); truncate -s $((size - 5000)) "$all_pack"
fails "verify finds a pack cut short" "DAMAGE" vmcas -s "$S" verify
fails "checkout of a version that needs the lost tail fails clearly" "(chunk|keyring node) [0-9a-f]{64}" vmcas -q -s "$S" checkout "$vp" --version "$vv" --memory o.m --disk o.d
check "and writes no file" '[ ! -e o.m ] && [ ! -e o.d ] && [ -z "$(ls | grep vmcas-)" ]'
restore

# 3. flips at many random places of every pack: each is found
RANDOM=7; missed=0
for i in $(seq 1 12); do
  f=$(ls "$S"/packs/*/*.pack | shuf -n1 --random-source=<(yes $i))
  sz=$(stat -c %s "$f"); off=$(( (RANDOM * 32768 + RANDOM) % sz ))
  img flip "$f" $off
  vmcas -s "$S" verify --full > v.out 2>&1 && { echo "# flip at $f:$off not found"; missed=1; }
  restore
done
check "12 random flips in packs are all found" '[ $missed = 0 ]'

# 4. a byte of an index value in LMDB (found by its tag bytes)
mdb="$S/index/data.mdb"
# the first record of the largest pack (docs/format-store.md: a 64-byte
# pack header, then records whose tag sits at offset 16)
rec_tag=$(od -An -tx1 -j $((64 + 16)) -N 32 "$pack" | tr -d ' \n')
# LMDB copies pages on write, so stale copies of the entry may sit in free
# pages: damage the value after every copy of the key
offs=$(perl -0777 -ne 'BEGIN { $t = pack("H*", shift) } while (/\Q$t\E/g) { print pos() - length($t), "\n" }' "$rec_tag" "$mdb")
if [ -n "$offs" ]; then
  for off in $offs; do img flip "$mdb" $((off + 40)); done   # inside the value stored after the key
  fails "verify --full finds a damaged index entry" "DAMAGE" vmcas -s "$S" verify --full
else
  echo "# record tag not found in the index (format changed?)"; check "found the index entry to damage" false
fi
restore
ok "the restored store verifies" vmcas -s "$S" verify --full

# 5. the index lost: verify --reindex rebuilds it from the packs alone
for off in $offs; do img flip "$mdb" $((off + 40)); done
fails "a damaged index entry is found" "DAMAGE" vmcas -s "$S" verify --full
ok "verify --reindex repairs it from the packs" vmcas -s "$S" verify --full --reindex
grep -q "reindexed [0-9]* chunks" "$TMPDIR/last.out"; check "and says how many chunks it indexed" '[ $? = 0 ]'
vmcas -q -s "$S" checkout p --version 2 --memory o.m --disk o.d
check "every version checks out after the repair" 'cmp -s o.m m && cmp -s o.d d2'
done_testing
