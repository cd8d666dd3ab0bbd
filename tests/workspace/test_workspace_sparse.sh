#!/usr/bin/env bash
# A workspace checkin of a large disk with few dirty chunks: the workers
# race through the pieces with nothing to hash, far ahead of each other.
# The checkin's ring of batches once deadlocked there (a worker getting a
# batch ready waited for a batch whose last piece another worker held
# while it waited for the first): every checkin here runs under a timeout
# and must finish, and the version must be the disk byte for byte.
. "$TOP/tests/lib.sh"
. "$TOP/tests/workspace/ws_lib.sh"
cd "$TMPDIR"
export VMCAS_HOST=wshost
vmcas -s st init >/dev/null
mkimg m 1048576 1
truncate -s 1G d
ok "a parcel of a 1 GiB disk, 128 KiB chunks" vmcas -q -s st parcel create p --policy ip --memory-size 1048576 --disk-size 1G
ok "version 1 (the disk all zero)" vmcas -q -s st checkin p --memory m --disk d --keep-lease
ok "checkout to a workspace" vmcas -q -s st checkout p --workspace ws
ok "workspace serve" serve_ws ws serve.log
# 1 % of the chunks, far apart, written through NBD and into d alike
ok "81 chunks written through nbdsh" nbdsh -u "$WS_URI" -c "
import random
random.seed(7)
f = open('d', 'r+b')
for i in random.sample(range(8192), 81):
    b = random.randbytes(131072)
    h.pwrite(b, i * 131072)
    f.seek(i * 131072)
    f.write(b)
f.close()
h.flush()
"
stop_ws TERM
for k in 1 2 3 4 5; do
  ok "workspace checkin $k finishes (60 s at most)" timeout 60 "$VMCAS" -q workspace checkin ws --json
  cp last.out ci$k.json
done
check "the first sent the 81 dirty chunks ($(wsj ci1.json new_chunks) new)" '[ "$(wsj ci1.json new_chunks)" = 81 ]'
check "the others had nothing to send" '[ "$(wsj ci5.json new_chunks)" = 0 ] && [ "$(wsj ci5.json version)" = 6 ]'
ok "a plain checkout of the latest version" vmcas -q -s st checkout p --no-lease --memory m2 --disk d2
check "is the written disk byte for byte" 'cmp -s d2 d && cmp -s m2 m'
done_testing
