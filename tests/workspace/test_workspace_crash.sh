#!/usr/bin/env bash
# kill -9 of nbdkit in the middle of writes: the workspace reopens, every
# write that was flushed is there, and the dirty map misses no chunk that
# differs (a checkin of it is what the disk showed, byte for byte).
. "$TOP/tests/lib.sh"
. "$TOP/tests/workspace/ws_lib.sh"
cd "$TMPDIR"
vmcas -s st init >/dev/null
mkimg m 1000000 1; mkimg d 8000000 2
vmcas -q -s st parcel create p --policy ip --chunk-size 64K --memory-size 1000000 --disk-size 8000000
vmcas -q -s st checkin p --memory m --disk d
ok "checkout to a workspace" vmcas -q -s st checkout p --workspace ws
ok "serve it" serve_ws ws serve.log
# A writer: 4 KiB writes to distinct places, each flushed and then logged;
# unflushed writes between them. Killed once it is well under way.
cat > writer.py <<'PY'
import os
log = open('flushed.log', 'a')
n = 8000000 // 4096
for i in range(n):
    off = (i * 37 % n) * 4096
    h.pwrite(bytes([i % 251 + 1]) * 4096, off)
    if i % 3 == 0:
        h.flush()
        log.write("%d %d\n" % (off, i % 251 + 1)); log.flush(); os.fsync(log.fileno())
PY
touch flushed.log
nbdsh -u "$WS_URI" -c "exec(open('writer.py').read())" > writer.out 2>&1 & wpid=$!
for _ in $(seq 300); do [ "$(wc -l < flushed.log 2>/dev/null || echo 0)" -ge 40 ] && break; sleep 0.05; done
kill -9 "$WS_PID"; wait "$WS_PID" 2>/dev/null
wait $wpid 2>/dev/null
check "nbdkit was killed mid-write after $(wc -l < flushed.log) flushed writes" '[ "$(wc -l < flushed.log)" -ge 40 ]'
ok "the workspace reopens" serve_ws ws serve2.log
nbdcopy "$WS_URI" after.raw
py - > verify.out <<'PY'
data = open('after.raw', 'rb').read()
bad = 0
for line in open('flushed.log'):
    off, v = map(int, line.split())
    if data[off:off + 4096] != bytes([v]) * 4096:
        bad += 1
print(bad)
PY
check "every flushed write is there ($(cat verify.out) missing)" '[ "$(cat verify.out)" = 0 ]'
ok "writes go on after the reopen" nbdsh -u "$WS_URI" -c 'h.pwrite(b"q" * 4096, 4096 * 3); h.flush()'
nbdcopy "$WS_URI" after2.raw
stop_ws TERM
ok "checkin of the dirty chunks" vmcas -q workspace checkin ws --json
ok "a plain checkout of the new version" vmcas -q -s st checkout p --no-lease --memory m2 --disk d2
check "is the disk the workspace served, byte for byte: the dirty map missed nothing" 'cmp -s d2 after2.raw'
done_testing
