#!/usr/bin/env bash
# An image that shrinks while it is being checked in. The checkin holds
# before the second batch of the disk image (VMCAS_TEST_HOLD_BATCH), the
# test cuts the file to 4 MiB, and the workers meet the missing pages: a
# mapped read takes SIGBUS, a pread (VMCAS_NO_MMAP=1) comes back short.
# Either way the checkin must stop with a clear error, not hang, commit
# nothing (locally and on a server), leave the store whole, and succeed
# when run again on the whole file.
. "$TOP/tests/lib.sh"
. "$TOP/tests/server/server_lib.sh"
cd "$TMPDIR"
MEM=1048576 DISK=33554432
img new m $MEM 1; img new d.1 $DISK 2
cp d.1 d.2; img mutate d.2 7 400

# shrink STORE-ARGS...: one checkin of d.2 (copied to d) held at its
# second batch, the file cut meanwhile; leaves rc and the error in err.
shrink() {
  cp d.2 d; rm -f hold
  VMCAS_TEST_HOLD_BATCH=$TMPDIR/hold timeout 60 "$VMCAS" -q "$@" checkin p --memory m --disk d > out 2> err & pid=$!
  for _ in $(seq 1 1000); do [ -e hold ] && break; sleep 0.02; done
  [ -e hold ] || echo "# the checkin never reached its second batch"
  truncate -s 4M d
  rm -f hold
  wait $pid; rc=$?
  sed 's/^/# /' err
}

for mode in mapped pread; do
  S=st-$mode
  if [ $mode = pread ]; then export VMCAS_NO_MMAP=1; else unset VMCAS_NO_MMAP; fi
  vmcas -s $S init >/dev/null
  vmcas -q -s $S parcel create p --policy all --chunk-size 4K --memory-size $MEM --disk-size $DISK >/dev/null
  ok "$mode: version 1 goes in" vmcas -q -s $S checkin p --memory m --disk d.1
  shrink -s $S
  check "$mode: the checkin stops (exit $rc, not a hang or a crash)" '[ $rc = 1 ]'
  check "$mode: ... and says the disk image is shorter than it was" 'grep -qE "disk image.*(shorter than it was|short)" err'
  n=$(vmcas -s $S log p --json | grep -c '"version"')
  check "$mode: no version was committed ($n listed)" '[ "$n" = 1 ]'
  ok "$mode: the store verifies" vmcas -s $S verify --full
  ok "$mode: the checkin of the whole file succeeds" vmcas -q -s $S checkin p --memory m --disk d.2
  vmcas -q -s $S checkout p --memory o.m --disk o.d
  check "$mode: ... and reads back byte for byte" 'cmp -s o.m m && cmp -s o.d d.2'
done
unset VMCAS_NO_MMAP

# the same against a server: nothing partial on it
vmcas -s srv init >/dev/null
export VMCAS_TOKEN=$(vmcas -s srv user add u | tail -1)
ok "a server starts" start_server srv serve.log
R=(-s "$URL" --cache "$TMPDIR/cache")
"$VMCAS" -q "${R[@]}" parcel create p --policy all --chunk-size 4K --memory-size $MEM --disk-size $DISK >/dev/null 2>&1
ok "remote: version 1 goes in" "$VMCAS" -q "${R[@]}" checkin p --memory m --disk d.1
shrink "${R[@]}"
check "remote: the checkin stops (exit $rc)" '[ $rc = 1 ]'
check "remote: ... and says the disk image is shorter than it was" 'grep -q "shorter than it was" err'
latest=$("$VMCAS" -q "${R[@]}" parcel list --json 2>/dev/null | json latest_version)
check "remote: the server's latest version is still 1 ($latest)" '[ "$latest" = 1 ]'
ok "remote: the checkin of the whole file succeeds" "$VMCAS" -q "${R[@]}" checkin p --memory m --disk d.2
rm -rf cache2
"$VMCAS" -q -s "$URL" --cache "$TMPDIR/cache2" checkout p --no-lease --memory o.m --disk o.d
check "remote: ... and a second host reads it back byte for byte" 'cmp -s o.m m && cmp -s o.d d.2'
ok "the server stops" stop_server TERM
ok "the server's store verifies" vmcas -s srv verify --full
done_testing
