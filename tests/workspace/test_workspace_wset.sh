#!/usr/bin/env bash
# The working set, against a real `vmcas serve` on 127.0.0.1: host A reads
# a few scattered chunks of its disk through nbdkit in an order of its own
# and checks in; the version keeps that read order. Host B (a cold host
# cache) checks version 2 out on demand: the checkout fetches no disk
# chunk, it leaves the order in DIR/workingset, and B's disk server
# fetches those chunks in the background, before any read, in that order.
# A replay of A's reads on B then fetches nothing on demand. Host C, with
# VMCAS_NO_WORKING_SET=1, gets no working set and fetches each on demand.
# A damaged DIR/workingset is refused with a clear error.
. "$TOP/tests/lib.sh"
. "$TOP/tests/server/server_lib.sh"
. "$TOP/tests/workspace/ws_lib.sh"
cd "$TMPDIR"
export VMCAS_PASSPHRASE="correct horse battery staple"
vmcas -s st init >/dev/null
export VMCAS_TOKEN=$(vmcas -s st user add alice | tail -1)
ok "the server starts" start_server st serve.log
hostenv() { echo "VMCAS_HOST=host$1 VMCAS_KEYS=$TMPDIR/keys VMCAS_CACHE=$TMPDIR/cache$1"; }
host() { local h=$1; shift; ( export $(hostenv $h); exec "$VMCAS" -q -s "$URL" "$@" ); }
status() { ( export $(hostenv $1); "$VMCAS" workspace status "$2" --json ) > "$3"; }
mkimg m 1000000 1; mkimg d 4000000 2
ok "host A creates the parcel (4 KiB chunks)" host A parcel create p --policy ip --chunk-size 4K --memory-size 1000000 --disk-size 4000000
ok "host A checks in version 1" host A checkin p --memory m --disk d
ok "host A checks out to a workspace" host A checkout p --workspace wsA
ok "host A serves it" serve_ws wsA serveA.log $(hostenv A)
# a session: 40 scattered chunks, in an order of their own, read twice
READS="[(i * 97 + 13) % 976 for i in range(40)]"
nbdsh -u "$WS_URI" -c "
for i in $READS + $READS:
    h.pread(4096, i * 4096)
"
ok "host A stops serving" stop_ws TERM
check "its log counts the reads, all served by its cache (the checkin put the chunks there)" \
  "grep -q 'disk served: 80 reads; chunks fetched: 0 on demand, 0 read ahead, 0 of the working set, 0 in the background' serveA.log"
ok "host A checks in (the read order goes with version 2)" host A workspace checkin wsA --release

ok "host B checks out version 2 on demand" host B checkout p --no-lease --workspace wsB --json
cp last.out coB.json
check "the checkout fetched no disk chunk ($(wsj coB.json disk_chunks_fetched))" '[ "$(wsj coB.json disk_chunks_fetched)" = 0 ]'
check "DIR/workingset lists the 40 chunks, in A's order" \
  "py -c \"import struct; v = list(struct.unpack('<40I', open('wsB/workingset', 'rb').read())); exit(v != $READS)\""
status B wsB sB0.json
check "nothing of the disk is in B's cache yet" '[ "$(wsj sB0.json present_chunks)" = 0 ]'
ok "host B serves it" serve_ws wsB serveB.log $(hostenv B)
for _ in $(seq 100); do status B wsB sB1.json; [ "$(wsj sB1.json present_chunks)" -ge 40 ] && break; sleep 0.1; done
check "the working set arrives in the background, before any read ($(wsj sB1.json present_chunks) present)" \
  '[ "$(wsj sB1.json present_chunks)" = 40 ]'
nbdsh -u "$WS_URI" -c "
import sys
for i in $READS:
    sys.stdout.buffer.write(h.pread(4096, i * 4096))
" > rB
py -c "
import sys
d = open('d', 'rb').read()
sys.stdout.buffer.write(b''.join(d[i * 4096:(i + 1) * 4096] for i in $READS))" > want
check "the replay reads the right bytes" 'cmp -s rB want'
ok "host B stops serving" stop_ws TERM
check "and fetched nothing on demand" "grep -q 'disk served: 40 reads; chunks fetched: 0 on demand, 0 read ahead, 40 of the working set, 0 in the background' serveB.log"

ok "host C checks out version 2 without the working set" env VMCAS_NO_WORKING_SET=1 $(hostenv C) "$VMCAS" -q -s "$URL" checkout p --no-lease --workspace wsC
check "it has no DIR/workingset" '[ ! -e wsC/workingset ]'
ok "host C serves it" serve_ws wsC serveC.log $(hostenv C)
nbdsh -u "$WS_URI" -c "
for i in $READS:
    h.pread(4096, i * 4096)
"
ok "host C stops serving" stop_ws TERM
check "each read was a miss" "grep -q 'chunks fetched: 40 on demand, 0 read ahead, 0 of the working set' serveC.log"

# a damaged working set: refused, with what to do
ok "host D checks out version 2" host D checkout p --no-lease --workspace wsD
printf 'abc' >> wsD/workingset
fails "a damaged workingset is refused" "workingset is damaged" env $(hostenv D) "$VMCAS" workspace status wsD
check "serving it fails too" '! serve_ws wsD serveD.log $(hostenv D) && grep -q "workingset is damaged" serveD.log'
py -c "import struct; open('wsD/workingset', 'wb').write(struct.pack('<I', 977))"
fails "a chunk past the disk is refused" "workingset is damaged" env $(hostenv D) "$VMCAS" workspace status wsD
rm wsD/workingset
ok "without it the disk is served" serve_ws wsD serveD.log $(hostenv D)
ok "host D stops serving" stop_ws TERM
done_testing
