#!/usr/bin/env bash
# Bounds: image sizes above the documented maximum (core/vc_limits.h: 4 TiB
# and 2^24 chunks an image), and every other number given to the command
# that sizes an allocation or feeds a nonce, are refused with a clear error
# before anything is written.
. "$TOP/tests/lib.sh"
S=$TMPDIR/store
vmcas -s "$S" init >/dev/null
img new m 200000 1; img new d 300000 2
vmcas -s "$S" parcel create p --policy delta --chunk-size 4K --memory-size 200000 --disk-size 300000 >/dev/null
vmcas -q -s "$S" checkin p --memory m --disk d >/dev/null
# Checks that need the client to call the new functions (vc_pool_threads,
# vc_image_size_check on --from): set to 0 once it does.
PENDING_CLIENT=0
pending() { _n=$((_n+1)); echo "ok $_n - $1 # SKIP until the client calls vc_pool_threads and vc_image_size_check"; }
before=$(snapshot "$S")
# usage NAME PATTERN CMD...: a usage error (exit 2) whose stderr matches.
usage() { local name=$1 pat=$2; shift 2; _n=$((_n+1)); local rc=0
  "$@" >"$TMPDIR/last.out" 2>&1 || rc=$?
  if [ $rc -eq 2 ] && grep -qE -- "$pat" "$TMPDIR/last.out"; then echo "ok $_n - $name"
  else echo "not ok $_n - $name (rc=$rc, wanted 2 and /$pat/)"; sed 's/^/# /' "$TMPDIR/last.out" | head -20; _failed=1; fi; }
create() { vmcas -s "$S" parcel create "$@"; }

# ---- image sizes ----
usage "--memory-size 16777215T" "memory size 18446742974197923840 bytes \(16777215 TiB\) is too large: vmcas accepts images of at most 4 TiB" \
  create q --policy ip --memory-size 16777215T --disk-size 1M
usage "--disk-size 4T plus one byte" "disk size 4398046511105 bytes .* is too large.*at most 4 TiB" \
  create q --policy ip --chunk-size 512K --memory-size 1M --disk-size 4398046511105
usage "--disk-size 5T" "too large" create q --policy ip --memory-size 1M --disk-size 5T
usage "a size that overflows 64 bits" "invalid memory size" create q --policy ip --memory-size 16777216T --disk-size 1M
usage "a size of 20 digits" "invalid disk size" create q --policy ip --memory-size 1M --disk-size 99999999999999999999
usage "4 TiB at the default 128 KiB chunks is too many chunks" \
  "disk size 4 TiB in chunks of 128 KiB is 33554432 chunks, more than the 16777216 vmcas accepts in one image.*use a chunk size of 256 KiB or more" \
  create q --policy ip --memory-size 1M --disk-size 4T
usage "1 TiB at 4 KiB chunks" "memory size 1 TiB in chunks of 4 KiB is 268435456 chunks.*16 GiB of memory.*use a chunk size of 64 KiB or more" \
  create q --policy ip --chunk-size 4K --memory-size 1T --disk-size 1M
usage "the chunk size counts wherever it is given" "268435456 chunks" \
  create q --policy ip --memory-size 1T --disk-size 1M --chunk-size 4K
usage "64 GiB plus one byte at 4 KiB chunks" "16777217 chunks.*use a chunk size of 8 KiB or more" \
  create q --policy delta --chunk-size 4K --memory-size 68719476737 --disk-size 1M
for cs in 0 1 3K 48K 1M 1T 4Q; do
  usage "--chunk-size $cs" "invalid chunk size" create q --policy ip --chunk-size $cs --memory-size 1M --disk-size 1M
done
check "no refused command changed the store" '[ "$(snapshot "$S")" = "$before" ]'
fails "and no parcel was made" "no parcel 'q'" vmcas -s "$S" log q

# ---- at the limits: accepted (a parcel with no version allocates nothing) ----
ok "4 TiB at 256 KiB chunks" create big --policy ip --chunk-size 256K --memory-size 4T --disk-size 4T
ok "64 GiB at 4 KiB chunks" create big4k --policy delta --chunk-size 4K --memory-size 64G --disk-size 64G
ok "2 TiB at the default chunk size" create big128k --policy all --memory-size 2T --disk-size 2T
ok "empty images" create empty --policy ip --memory-size 0 --disk-size 0
check "parcel list shows them" 'vmcas -s "$S" parcel list | grep -q "^big "'
before=$(snapshot "$S")

# ---- every other number ----
usage "--from version 0" "invalid version in --from" create q --policy ip --from p@0
usage "--from version beyond 32 bits" "invalid version in --from" create q --policy ip --from p@4294967296
usage "checkout --version beyond 32 bits" "invalid version" vmcas -s "$S" checkout p --version 4294967296 --memory o.m --disk o.d
usage "checkout --version -1" "invalid version" vmcas -s "$S" checkout p --version -1 --memory o.m --disk o.d
usage "prune --keep beyond 32 bits" "invalid --keep" vmcas -s "$S" prune p --keep 4294967296
usage "prune --keep 0" "invalid --keep" vmcas -s "$S" prune p --keep 0
usage "gc --grace beyond 2^40 seconds" "invalid --grace" vmcas -s "$S" gc --grace 1099511627777
usage "gc --grace -5" "invalid --grace" vmcas -s "$S" gc --grace -5
fails "VMCAS_INDEX_MAPSIZE that is not a size" "invalid VMCAS_INDEX_MAPSIZE" env VMCAS_INDEX_MAPSIZE=lots "$VMCAS" -s "$S" stat
if [ $PENDING_CLIENT = 1 ]; then
  for t in 0 17 abc; do pending "VMCAS_THREADS=$t is refused"; done
else
  for t in 0 17 abc 2x; do
    fails "VMCAS_THREADS=$t is refused" "invalid VMCAS_THREADS '$t' \(a number of worker threads from 1 to 16\)" \
      env VMCAS_THREADS=$t "$VMCAS" -q -s "$S" checkout p --memory o.m --disk o.d
  done
fi
check "no refused command changed the store" '[ "$(snapshot "$S")" = "$before" ]'
for t in 1 2 16; do
  ok "VMCAS_THREADS=$t works" env VMCAS_THREADS=$t "$VMCAS" -q -s "$S" checkout p --memory o.m --disk o.d
done
check "byte for byte" 'cmp -s o.m m && cmp -s o.d d'
ok "verify" vmcas -s "$S" verify --full
done_testing
