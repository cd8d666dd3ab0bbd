#!/usr/bin/env bash
# Workspaces against a real `vmcas serve` on 127.0.0.1: host B resumes on
# demand (chunks come when read, with their neighbours), writes and checks
# in; a lease held by host B refuses host A until it is broken, and then
# B's checkin is refused; host A checks out the new version (second cache,
# second workspace, --fetch complete) and reads it byte for byte. A
# workspace whose server went away returns NBD errors to its client, not
# garbage and not a hang, and recovers when the server is back.
. "$TOP/tests/lib.sh"
. "$TOP/tests/server/server_lib.sh"
. "$TOP/tests/workspace/ws_lib.sh"
cd "$TMPDIR"
export VMCAS_PASSPHRASE="correct horse battery staple"
vmcas -s st init >/dev/null
export VMCAS_TOKEN=$(vmcas -s st user add alice | tail -1)
ok "the server starts" start_server st serve.log
hostenv() { echo "VMCAS_HOST=host$1 VMCAS_KEYS=$TMPDIR/keys$2 VMCAS_CACHE=$TMPDIR/cache$1"; }
host() { local h=$1 k=$2; shift 2; ( export $(hostenv $h $k); exec "$VMCAS" -q -s "$URL" "$@" ); }
mkimg m 1000000 1; mkimg d 4000000 2
ok "host A creates the parcel (4 KiB chunks)" host A A parcel create p --policy all --chunk-size 4K --memory-size 1000000 --disk-size 4000000
ok "host A checks in version 1" host A A checkin p --memory m --disk d
ok "host B logs in" env VMCAS_KEYS=$TMPDIR/keysB "$VMCAS" login "$URL"
ok "host B checks out to a workspace, on demand" host B B checkout p --workspace wsB --json
cp last.out coB.json
check "only the memory image came ($(wsj coB.json received_data_bytes) bytes)" \
  '[ "$(wsj coB.json received_data_bytes)" -lt 1200000 ]'
( export $(hostenv B B); "$VMCAS" workspace status wsB --json ) > sB0.json
check "status: every disk chunk missing ($(wsj sB0.json missing_chunks))" \
  '[ "$(wsj sB0.json missing_chunks)" = 977 ] && [ "$(wsj sB0.json present_chunks)" = 0 ]'
ok "host B serves its workspace" serve_ws wsB serveB.log $(hostenv B B)
nbdsh -u "$WS_URI" -c 'import sys; sys.stdout.buffer.write(h.pread(4096, 409600))' > r1
check "a read of a missing chunk is the disk's" 'cmp -s r1 <(tail -c +409601 d | head -c 4096)'
# the host cache indexes a disk server's fetch just after the read
# returned (its settler thread): status, another process, may look first
status_until() { # FILE WANT_PRESENT_MIN: status of wsB into FILE, retried for 5 s
  for _ in $(seq 100); do
    ( export $(hostenv B B); "$VMCAS" workspace status wsB --json ) > "$1"
    [ "$(wsj "$1" present_chunks)" -ge "$2" ] && return 0; sleep 0.05
  done
}
status_until sB1.json 1
check "a random miss came alone ($(wsj sB1.json present_chunks) present)" \
  '[ "$(wsj sB1.json present_chunks)" = 1 ]'
nbdsh -u "$WS_URI" -c 'import sys; sys.stdout.buffer.write(h.pread(4096, 409600 + 4096))' > r2
check "the next chunk too" 'cmp -s r2 <(tail -c +$((409600 + 4097)) d | head -c 4096)'
status_until sB2.json 3
check "a miss that continues a run came with its sequential neighbours ($(wsj sB2.json present_chunks) present)" \
  '[ "$(wsj sB2.json present_chunks)" -gt 2 ] && [ "$(wsj sB2.json present_chunks)" -le 66 ]'
ok "host B writes and flushes" qemu-io -f raw -c "write -P 0x5a 1000000 10000" -c flush "$WS_URI"
stop_ws TERM
py - <<'PY'
d = bytearray(open('d', 'rb').read())
d[1000000:1010000] = b'\x5a' * 10000
open('exp', 'wb').write(d)
PY
fails "host A is refused while host B holds the lease" "leased to host 'hostB'" host A A checkout p --workspace wsA
ok "host B checks in its workspace (the lease stays)" host B B workspace checkin wsB --json
cp last.out ciB.json
check "version 2, $(wsj ciB.json new_chunks) new chunks" '[ "$(wsj ciB.json version)" = 2 ] && [ "$(wsj ciB.json new_chunks)" -le 4 ]'
fails "host A is still refused" "leased to host 'hostB'" host A A checkout p --workspace wsA
ok "an administrator breaks the lease" vmcas -s st lease break p
ok "host A checks out version 2 to a workspace, fetched complete" host A A checkout p --workspace wsA --fetch complete --json
( export $(hostenv A A); "$VMCAS" workspace status wsA --json ) > sA.json
check "nothing missing" '[ "$(wsj sA.json missing_chunks)" = 0 ]'
fails "host B's checkin is refused now" "lease|broken|leased" host B B workspace checkin wsB
ok "host A serves version 2" serve_ws wsA serveA.log $(hostenv A A)
nbdcopy "$WS_URI" a.raw
check "byte for byte what host B wrote" 'cmp -s a.raw exp'
stop_ws TERM

# --fetch background: the disk comes while it is served
ok "host D checks out with --fetch background" host D B checkout p --no-lease --workspace wsD --fetch background
ok "host D serves it" serve_ws wsD serveD.log $(hostenv D B)
nbdsh -u "$WS_URI" -c 'import sys; sys.stdout.buffer.write(h.pread(4096, 2000000))' > dd
check "reads are served at once" 'cmp -s dd <(tail -c +2000001 exp | head -c 4096)'
for _ in $(seq 300); do
  ( export $(hostenv D B); "$VMCAS" workspace status wsD --json ) > sD.json
  [ "$(wsj sD.json missing_chunks)" = 0 ] && break; sleep 0.1
done
check "and the whole disk arrives in the background ($(wsj sD.json present_chunks) present)" \
  '[ "$(wsj sD.json missing_chunks)" = 0 ] && [ "$(wsj sD.json present_chunks)" -gt 900 ]'
nbdcopy "$WS_URI" dD.raw
check "byte for byte" 'cmp -s dD.raw exp'
stop_ws TERM

# small gets that sleep for their reply at once (VMCAS_NO_SPIN=1) and no
# read-ahead (VMCAS_READAHEAD=0): every miss is its own get, same bytes
ok "host E checks out without a lease, on demand" host E B checkout p --no-lease --workspace wsE
ok "host E serves it without spin or read-ahead" serve_ws wsE serveE.log $(hostenv E B) VMCAS_NO_SPIN=1 VMCAS_READAHEAD=0
nbdsh -u "$WS_URI" -c 'import sys; sys.stdout.buffer.write(h.pread(4096, 1000000))' > e0
check "a read of one missing chunk" 'cmp -s e0 <(tail -c +1000001 exp | head -c 4096)'
nbdcopy "$WS_URI" dE.raw
check "and the whole disk, byte for byte" 'cmp -s dE.raw exp'
stop_ws TERM

# the server goes away under a workspace on demand
ok "host C checks out without a lease, on demand" host C B checkout p --no-lease --workspace wsC
ok "host C serves it" serve_ws wsC serveC.log $(hostenv C B)
nbdsh -u "$WS_URI" -c 'import sys; sys.stdout.buffer.write(h.pread(4096, 0))' > c0
check "a first read" 'cmp -s c0 <(head -c 4096 exp)'
stop_server KILL
timeout 60 /usr/bin/env PATH=/usr/bin:$PATH nbdsh -u "$WS_URI" -c 'h.pread(4096, 3000000)' > gone.out 2>&1; rc=$?
check "with the server gone a read fails with an NBD error, no hang (rc $rc: $(tail -1 gone.out))" \
  '[ $rc = 1 ] && grep -qi "error" gone.out'
"$VMCAS" -s st serve --listen 127.0.0.1:$PORT 2>serve2.log & SERVER_PID=$!; _server_pids+=("$SERVER_PID")
for _ in $(seq 100); do grep -q listening serve2.log && break; sleep 0.1; done
nbdsh -u "$WS_URI" -c 'import sys; sys.stdout.buffer.write(h.pread(4096, 3000000))' > c1
check "the server is back: the read succeeds" 'cmp -s c1 <(tail -c +3000001 exp | head -c 4096)'
nbdcopy "$WS_URI" c.raw
check "and the whole disk reads byte for byte" 'cmp -s c.raw exp'
stop_ws TERM
ok "the server stops" stop_server TERM
done_testing
