#!/usr/bin/env bash
# A workspace of a local store: checkout --workspace, the disk through the
# real nbdkit and real clients (nbdcopy, nbdsh, qemu-img, qemu-io) over a
# Unix socket: read, extents, write, flush, disconnect and reconnect;
# status; checkin of the dirty chunks only; the new version byte for byte;
# the lease.
. "$TOP/tests/lib.sh"
. "$TOP/tests/workspace/ws_lib.sh"
cd "$TMPDIR"
export VMCAS_HOST=wshost
vmcas -s st init >/dev/null
mkimg m 3000000 1
{ mkimg r1 2000000 2; cat r1; head -c 4000000 /dev/zero; mkimg r2 2000000 3; cat r2; } > d
ok "a parcel with 64 KiB chunks" vmcas -q -s st parcel create p --policy ip --chunk-size 64K --memory-size 3000000 --disk-size 8000000
ok "version 1" vmcas -q -s st checkin p --memory m --disk d --keep-lease
ok "checkout to a workspace" vmcas -q -s st checkout p --workspace ws --json
check "the workspace is private: dir 0700, keyring 0600" \
  '[ "$(stat -c %a ws)" = 700 ] && [ "$(stat -c %a ws/disk.keyring)" = 600 ] && [ "$(stat -c %a ws/workspace)" = 600 ]'
check "DIR/memory is the memory image" 'cmp -s ws/memory m'
vmcas workspace status ws --json > s0.json
check "status: nothing dirty or missing, zero chunks counted ($(wsj s0.json zero_chunks))" \
  '[ "$(wsj s0.json dirty_chunks)" = 0 ] && [ "$(wsj s0.json missing_chunks)" = 0 ] && [ "$(wsj s0.json zero_chunks)" -ge 58 ]'
fails "a checkout into a directory that is not empty is refused" "not empty" vmcas -q -s st checkout p --no-lease --workspace ws
ok "workspace serve starts nbdkit with the plugin" serve_ws ws serve.log
check "it printed the URI" 'grep -q "^nbd+unix:///?socket=ws/nbd.sock" serve.log.uri'
ok "nbdcopy reads the whole disk" nbdcopy "$WS_URI" out.raw
check "byte for byte" 'cmp -s out.raw d'
qemu-img map --output=json -f raw "$WS_URI" > map.json
check "qemu-img map sees the zero chunks as holes" 'grep -q "\"zero\": true, \"data\": false" map.json && grep -q "\"data\": true" map.json'
ok "qemu-io writes and flushes" qemu-io -f raw -c "write -P 0xab 100000 5000" -c flush "$WS_URI"
ok "nbdsh writes across two chunks and flushes" nbdsh -u "$WS_URI" -c 'h.pwrite(b"x" * 70000, 3000000); h.flush()'
ok "a write into a zero chunk" nbdsh -u "$WS_URI" -c 'h.pwrite(b"z" * 10, 4500000); h.flush()'
py - <<'PY'
d = bytearray(open('d', 'rb').read())
d[100000:105000] = b'\xab' * 5000
d[3000000:3070000] = b'x' * 70000
d[4500000:4500010] = b'z' * 10
open('exp', 'wb').write(d)
PY
ok "reconnected, qemu-io reads the pattern back" qemu-io -f raw -c "read -P 0xab 100000 5000" "$WS_URI"
ok "and the untouched bytes around it" qemu-io -f raw -c "read -P 0 2100000 4096" "$WS_URI"
nbdcopy "$WS_URI" out2.raw
check "the disk is the base plus the writes" 'cmp -s out2.raw exp'
vmcas workspace status ws --json > s1.json
check "status: 4 dirty chunks (256 KiB to send), served" \
  '[ "$(wsj s1.json dirty_chunks)" = 4 ] && [ "$(wsj s1.json bytes_to_send)" = 262144 ] && grep -q "\"served\": true" s1.json'
fails "checkin while served is refused" "in use" vmcas -q workspace checkin ws
ok "nbdkit stops" stop_ws TERM
ok "the workspace reopens after the stop" serve_ws ws serve2.log
ok "reads in an order of the client's" nbdsh -u "$WS_URI" -c 'h.pread(4096, 100 * 65536); h.pread(100, 5 * 65536 + 10); h.pread(4096, 100 * 65536); h.pread(70000, 50 * 65536); h.flush()'
vmcas workspace status ws --json > s3.json
check "the read order is kept: chunks 100, 5, 50, 51 ($(od -An -tu4 ws/readorder | xargs))" \
  '[ "$(od -An -tu4 ws/readorder | xargs)" = "100 5 50 51" ] && [ "$(wsj s3.json read_order_chunks)" = 4 ]'
nbdcopy "$WS_URI" out3.raw
check "with every write" 'cmp -s out3.raw exp'
stop_ws TERM
ok "workspace checkin" vmcas -q workspace checkin ws --json
cp last.out ci.json
# 4 dirty disk chunks, and the read order of the session (one chunk)
check "version 2 from the dirty chunks only ($(wsj ci.json new_chunks) new, $(wsj ci.json reused_chunks) reused)" \
  '[ "$(wsj ci.json version)" = 2 ] && [ "$(wsj ci.json new_chunks)" = 5 ]'
vmcas workspace status ws --json > s2.json
check "the workspace is at version 2 with nothing dirty" '[ "$(wsj s2.json version)" = 2 ] && [ "$(wsj s2.json dirty_chunks)" = 0 ]'
ok "a plain checkout of version 2" vmcas -q -s st checkout p --no-lease --memory m2 --disk d2
check "is the workspace's disk byte for byte" 'cmp -s d2 exp && cmp -s m2 m'
ok "the workspace serves version 2" serve_ws ws serve3.log
nbdcopy "$WS_URI" out4.raw
check "byte for byte" 'cmp -s out4.raw exp'
stop_ws TERM
vmcas -s st lease show p > lease.out 2>&1
check "the lease stayed with this host ($(cat lease.out))" 'grep -q "leased to host wshost" lease.out'
fails "another host's checkout is refused" "leased to host" env VMCAS_HOST=other "$VMCAS" -q -s st checkout p --workspace ws2
ok "checkin --release" vmcas -q workspace checkin ws --release
ok "then the other host checks out" env VMCAS_HOST=other "$VMCAS" -q -s st checkout p --workspace ws2 --fetch complete
ok "and serves it" serve_ws ws2 serve4.log
nbdcopy "$WS_URI" out5.raw
check "version 3 is version 2's disk" 'cmp -s out5.raw exp'
stop_ws TERM
done_testing
