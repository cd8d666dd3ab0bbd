#!/usr/bin/env bash
# Round trips: every policy x chunk sizes 4K, 64K, 512K x compression; image
# sizes that are not multiples of the chunk size; several versions, each
# checked out again byte for byte; a gold image copied with --from.
. "$TOP/tests/lib.sh"
S=$TMPDIR/store
vmcas -s "$S" init >/dev/null
img new m1 1300000 1; img new d1 2100001 2
cp m1 m2; cp d1 d2; img mutate m2 3 10; img mutate d2 4 5
cp m2 m3; cp d2 d3; img mutate m3 5 50; : > /dev/null
i=0
for pol in delta ip all group:g1; do
  for cs in 4K 64K 512K; do
    for z in none gzip zstd; do
      i=$((i+1)); p=p$i
      vmcas -s "$S" parcel create $p --policy $pol --chunk-size $cs --compress $z --memory-size 1300000 --disk-size 2100001 >/dev/null || { echo "not ok - create $p"; continue; }
      good=1
      for v in 1 2 3; do vmcas -q -s "$S" checkin $p --memory m$v --disk d$v >/dev/null || good=0; done
      for v in 1 2 3; do
        vmcas -q -s "$S" checkout $p --version $v --memory out.m --disk out.d && cmp -s out.m m$v && cmp -s out.d d$v || good=0
      done
      check "round trip $pol chunk $cs compress $z (3 versions)" '[ $good = 1 ]'
    done
  done
done
# the latest version is the default
vmcas -q -s "$S" checkout p1 --memory out.m --disk out.d
check "checkout without --version gives the latest" 'cmp -s out.m m3 && cmp -s out.d d3'
# gold image: version 1 of a new parcel is a copy of another's version
for pol in delta ip all group:g2; do
  ok "parcel create --from under $pol" vmcas -q -s "$S" parcel create gold-${pol%%:*} --policy $pol --from p2@2
  vmcas -q -s "$S" checkout gold-${pol%%:*} --memory out.m --disk out.d
  check "the copy of $pol is byte for byte version 2" 'cmp -s out.m m2 && cmp -s out.d d2'
done
ok "--from with another chunk size" vmcas -q -s "$S" parcel create gold-cs --policy ip --chunk-size 16K --from p20
vmcas -q -s "$S" checkout gold-cs --memory out.m --disk out.d
check "copy across chunk sizes is exact" 'cmp -s out.m m3 && cmp -s out.d d3'
vmcas -q -s "$S" checkin gold-cs --memory m1 --disk d1 > /dev/null
vmcas -q -s "$S" checkout gold-cs --version 2 --memory out.m --disk out.d
check "a checkin after --from is version 2" 'cmp -s out.m m1 && cmp -s out.d d1'
# empty images are allowed
vmcas -s "$S" parcel create empty --policy all --memory-size 0 --disk-size 4096 >/dev/null
: > e.m; head -c 4096 /dev/zero > e.d
ok "checkin of an empty memory image" vmcas -q -s "$S" checkin empty --memory e.m --disk e.d
vmcas -q -s "$S" checkout empty --memory out.m --disk out.d
check "empty and all-zero images round trip" '[ ! -s out.m ] && cmp -s out.d e.d'
ok "verify --full after all that" vmcas -s "$S" verify --full
done_testing
