#!/usr/bin/env bash
# What each policy shares: ip nothing between parcels, group only within
# its group, all everything; delta only the same position. And the keyring
# trees: a version that changed 1 % of its chunks adds little metadata.
. "$TOP/tests/lib.sh"
S=$TMPDIR/store
vmcas -s "$S" init >/dev/null
img new m 1000000 11; img new d 3000000 12
mk() { vmcas -s "$S" parcel create "$1" --policy "$2" --chunk-size 4K --compress none --memory-size 1000000 --disk-size 3000000 >/dev/null; }
new_chunks() { vmcas -q -s "$S" checkin "$1" --memory "$2" --disk "$3" --json | json new_chunks; }
for p in ip1 ip2; do mk $p ip; done
for p in all1 all2; do mk $p all; done
mk g1a group:one; mk g1b group:one; mk g2a group:two
mk d1 delta

a=$(new_chunks ip1 m d); b=$(new_chunks ip2 m d)
check "ip stores the first parcel's chunks ($a new)" '[ "$a" -gt 100 ]'
check "ip shares nothing between parcels ($b new again)" '[ "$b" = "$a" ]'
a=$(new_chunks all1 m d); b=$(new_chunks all2 m d)
check "all stores the chunks once ($a new)" '[ "$a" -gt 100 ]'
check "all shares across parcels (0 new)" '[ "$b" = 0 ]'
a=$(new_chunks g1a m d); b=$(new_chunks g1b m d); c=$(new_chunks g2a m d)
check "group shares within the group (0 new)" '[ "$a" -gt 100 ] && [ "$b" = 0 ]'
check "group shares nothing with another group" '[ "$c" = "$a" ]'
# inside one parcel, identical pages are stored once under ip/all/group,
# so fewer chunks are new than there are non-zero chunks
nz=$(vmcas -q -s "$S" checkin d1 --memory m --disk d --json)
dnew=$(echo "$nz" | json new_chunks); dzero=$(echo "$nz" | json zero_chunks); dall=$(echo "$nz" | json chunks)
check "delta stores every non-zero position ($dnew = $dall - $dzero)" '[ "$dnew" = $((dall - dzero)) ]'
check "ip dedups repeated pages inside a parcel ($a < $dnew)" '[ "$a" -lt "$dnew" ]'
# an unchanged checkin stores nothing
for p in ip1 all1 g1a d1; do
  n=$(new_chunks $p m d)
  check "unchanged checkin of $p adds no chunk" '[ "$n" = 0 ]'
done
# delta: a page moved to another position is stored again; ip finds it
page() { dd if="$1" bs=4096 skip="$2" count=1 2>/dev/null | od -An -tx1 | tr -d ' \n'; }
src=10; zero=$(head -c 4096 /dev/zero | od -An -tx1 | tr -d ' \n')
while [ "$(page m $src)" = "$zero" ] || [ "$(page m $src)" = "$(page m 200)" ]; do src=$((src+1)); done
cp m m2; dd if=m of=m2 bs=4096 skip=$src seek=200 count=1 conv=notrunc 2>/dev/null
n=$(new_chunks d1 m2 d); check "delta stores a page moved in place ($n new)" '[ "$n" = 1 ]'
n=$(new_chunks ip1 m2 d); check "ip finds a page moved elsewhere (0 new)" '[ "$n" = 0 ]'
# keyring trees: 1 % of chunks changed in runs costs a few % of a flat keyring
S2=$TMPDIR/store2; vmcas -s "$S2" init >/dev/null
vmcas -s "$S2" parcel create big --policy all --chunk-size 4K --compress none --memory-size 4M --disk-size 60M >/dev/null
img new bm 4194304 21; img new bd 62914560 22
vmcas -q -s "$S2" checkin big --memory bm --disk bd >/dev/null
img mutate bd 23 1
meta=$(vmcas -q -s "$S2" checkin big --memory bm --disk bd --json | json meta_bytes)
flat=$(( (4194304 + 62914560) / 4096 * 64 ))
check "1 % changed adds $meta bytes of keyring, <= 3 % of a flat one ($flat)" '[ $((meta * 100)) -le $((flat * 3)) ]'
done_testing
