#!/usr/bin/env bash
# Bad input is a clear error and changes nothing: flags, sizes, files,
# parcels, versions, keys, store paths.
. "$TOP/tests/lib.sh"
S=$TMPDIR/store
vmcas -s "$S" init >/dev/null
img new m 200000 1; img new d 300000 2; img new big 300001 3
vmcas -s "$S" parcel create p --policy ip --chunk-size 4K --memory-size 200000 --disk-size 300000 >/dev/null
vmcas -q -s "$S" checkin p --memory m --disk d >/dev/null
before=$(snapshot "$S")

fails "no command" "Usage" vmcas
fails "unknown command" "unknown command 'frobnicate'" vmcas -s "$S" frobnicate
fails "unknown flag" "unrecognized option|invalid option" vmcas -s "$S" checkin p --memroy m --disk d
ok "--help of a command" vmcas checkin --help
ok "--help of vmcas" vmcas --help
fails "no store" "no store given" env -u VMCAS_STORE "$VMCAS" stat
fails "store that is not a store" "not a vmcas store" vmcas -s "$TMPDIR" stat
fails "store that does not exist" "not a vmcas store|does not exist|No such" vmcas -s "$TMPDIR/nope" stat
fails "init over an existing store" "already holds a vmcas store" vmcas -s "$S" init
fails "malformed size 4Q" "invalid memory size: '4Q'" vmcas -s "$S" parcel create q --policy ip --memory-size 4Q --disk-size 1M
fails "chunk size not a power of two" "invalid chunk size" vmcas -s "$S" parcel create q --policy ip --chunk-size 48K --memory-size 1M --disk-size 1M
fails "chunk size too small" "invalid chunk size" vmcas -s "$S" parcel create q --policy ip --chunk-size 2K --memory-size 1M --disk-size 1M
fails "chunk size too large" "invalid chunk size" vmcas -s "$S" parcel create q --policy ip --chunk-size 1M --memory-size 1M --disk-size 1M
fails "unknown policy" "unknown policy 'some'" vmcas -s "$S" parcel create q --policy some --memory-size 1M --disk-size 1M
fails "bad group name" "invalid group name" vmcas -s "$S" parcel create q --policy group:a/b --memory-size 1M --disk-size 1M
fails "unknown compression" "unknown compression 'lz4'" vmcas -s "$S" parcel create q --policy ip --compress lz4 --memory-size 1M --disk-size 1M
fails "missing --policy" "--policy is required" vmcas -s "$S" parcel create q --memory-size 1M --disk-size 1M
fails "sizes and --from together" "not both" vmcas -s "$S" parcel create q --policy ip --from p --memory-size 1M --disk-size 1M
fails "bad parcel name" "invalid parcel name" vmcas -s "$S" parcel create 'a b' --policy ip --memory-size 1M --disk-size 1M
fails "existing parcel" "already exists" vmcas -s "$S" parcel create p --policy ip --memory-size 1M --disk-size 1M
fails "--from unknown parcel" "no parcel 'nope'" vmcas -s "$S" parcel create q --policy ip --from nope
fails "--from unknown version" "has no version 9" vmcas -s "$S" parcel create q --policy ip --from p@9
fails "checkin of an unknown parcel" "no parcel 'nope'" vmcas -s "$S" checkin nope --memory m --disk d
fails "checkin of a missing file" "cannot open the memory image 'missing'" vmcas -s "$S" checkin p --memory missing --disk d
fails "checkin of a wrong-size disk" "disk image 'big' is 300001 bytes, but the parcel's disk image is 300000" vmcas -s "$S" checkin p --memory m --disk big
fails "checkin of a directory" "not a regular file" vmcas -s "$S" checkin p --memory "$TMPDIR" --disk d
fails "checkin without --disk" "required" vmcas -s "$S" checkin p --memory m
fails "checkout of an unknown version" "has no version 7" vmcas -s "$S" checkout p --version 7 --memory o.m --disk o.d
fails "checkout --version 0" "invalid version" vmcas -s "$S" checkout p --version 0 --memory o.m --disk o.d
fails "checkout --version x" "invalid version" vmcas -s "$S" checkout p --version x --memory o.m --disk o.d
fails "log of an unknown parcel" "no parcel" vmcas -s "$S" log nope
fails "prune --keep 0" "invalid --keep" vmcas -s "$S" prune p --keep 0
fails "gc --grace -1" "invalid --grace" vmcas -s "$S" gc --grace -1
check "no output file left by failed checkouts" '[ ! -e o.m ] && [ ! -e o.d ] && [ -z "$(ls | grep vmcas-)" ]'

# keys: missing, wrong, readable by others
K=$(ls -d "$VMCAS_KEYS"/*)
mv "$K/parcel-p.key" "$TMPDIR/p.key"
fails "missing key" "no key for parcel 'p'" vmcas -s "$S" checkout p --memory o.m --disk o.d
printf 'vmcas-key 1\n%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$K/parcel-p.key"; chmod 600 "$K/parcel-p.key"
fails "wrong key" "wrong key" vmcas -s "$S" checkout p --memory o.m --disk o.d
fails "wrong key at checkin" "wrong key" vmcas -s "$S" checkin p --memory m --disk d
echo garbage > "$K/parcel-p.key"
fails "malformed key file" "malformed" vmcas -s "$S" checkout p --memory o.m --disk o.d
cp "$TMPDIR/p.key" "$K/parcel-p.key"; chmod 644 "$K/parcel-p.key"
fails "key file readable by others" "readable by others" vmcas -s "$S" checkout p --memory o.m --disk o.d
chmod 600 "$K/parcel-p.key"
check "no failed command changed the store" '[ "$(snapshot "$S")" = "$before" ]'
# an existing output file is left alone by a failed checkout
echo precious > o.m
mv "$K/parcel-p.key" "$TMPDIR/p.key"
vmcas -s "$S" checkout p --memory o.m --disk o.d 2>/dev/null
check "a failed checkout leaves an existing file as it was" '[ "$(cat o.m)" = precious ]'
mv "$TMPDIR/p.key" "$K/parcel-p.key"
ok "with the right key, checkout works" vmcas -q -s "$S" checkout p --memory o.m --disk o.d
check "and is byte for byte" 'cmp -s o.m m && cmp -s o.d d'
fails "checkout onto a directory" "not a regular file" vmcas -s "$S" checkout p --memory "$TMPDIR" --disk o.d
ok "verify after all that" vmcas -s "$S" verify --full
done_testing
