#!/usr/bin/env bash
# A server whose disk fills up. Its store lives on a 40 MiB tmpfs made for
# the test; a client (its cache on the machine's own disk) checks in new versions over HTTP
# until one fails. The failure must say that the server's disk is full
# (HTTP 507, the server's own message), the server must keep serving, no
# partial version may appear, and the store must verify. Then an
# administrator frees room over the same URL (prune, gc); the same
# checkin, run again, succeeds; every version kept reads back byte for
# byte on a second host.
. "$TOP/tests/lib.sh"
. "$TOP/tests/server/server_lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root to mount a small file system"
M=$TMPDIR/small
mkdir -p "$M"
mount -t tmpfs -o size=40m tmpfs "$M" || skip_all "cannot mount a tmpfs"
trap 'cleanup_servers; umount "$M" 2>/dev/null || umount -l "$M"' EXIT
cd "$TMPDIR"
S=$M/store
vmcas -s "$S" init >/dev/null
export VMCAS_TOKEN=$(vmcas -s "$S" user add u | tail -1)
ADMIN=$(vmcas -s "$S" user add root --admin | tail -1)
ok "a server starts on the small disk" start_server "$S" serve.log
r() { vmcas -q -s "$URL" --cache "$TMPDIR/cache-a" "$@"; }
img new m.1 1048576 1; img new d.1 3145728 2
ok "a parcel is made" r parcel create p --policy ip --chunk-size 16K --memory-size 1048576 --disk-size 3145728
ok "version 1 goes in" r checkin p --memory m.1 --disk d.1
good=1 v=1 failed=
for i in $(seq 1 40); do
  v=$((v + 1))
  cp "m.$good" "m.$v"; cp "d.$good" "d.$v"
  img mutate "m.$v" "$v" 60; img mutate "d.$v" "$((v + 500))" 60
  if ! r checkin p --memory "m.$v" --disk "d.$v" > ci.out 2>&1; then failed=$v; break; fi
  good=$v
done
sed 's/^/# /' ci.out
check "checkins fill the server's disk until one fails (version $failed, after $good)" '[ -n "$failed" ] && [ $good -gt 3 ]'
check "the failure says the server's disk is full" 'grep -qiE "no space left" ci.out'
check "... without telling where the store is on the server ($M)" '! grep -qF "$M" ci.out'
check "the server's log has the whole message" 'grep -q "HTTP 507 to user .u.: .*$M" serve.log'
check "the server is still running" 'kill -0 $SERVER_PID'
latest=$(r parcel list --json 2>/dev/null | json latest_version)
check "no partial version: the latest is still $good (server says ${latest:-nothing})" '[ "$latest" = "$good" ]'
rm -rf cache-b
ok "the latest version checks out on a second host" vmcas -q -s "$URL" --cache "$TMPDIR/cache-b" checkout p --no-lease --memory o.m --disk o.d
check "... byte for byte" 'cmp -s o.m m.$good && cmp -s o.d d.$good'
ok "the server's store verifies over the URL" env VMCAS_TOKEN="$ADMIN" "$VMCAS" -q -s "$URL" verify --full

# room again: the owner prunes, the administrator collects
ok "prune over the URL" r prune p --keep 2
ok "gc over the URL frees the pruned chunks" env VMCAS_TOKEN="$ADMIN" "$VMCAS" -q -s "$URL" gc --grace 0
ok "the failed checkin, run again, succeeds" r checkin p --memory "m.$failed" --disk "d.$failed" --json
sent=$(json sent_data_bytes < "$TMPDIR/last.out")
check "... and sends data ($sent bytes)" '[ "${sent:-0}" -gt 0 ]'
rm -rf cache-b
ok "the new version checks out on the second host" vmcas -q -s "$URL" --cache "$TMPDIR/cache-b" checkout p --no-lease --memory o.m --disk o.d
check "... byte for byte" 'cmp -s o.m m.$failed && cmp -s o.d d.$failed'
ok "the version kept by prune checks out" vmcas -q -s "$URL" --cache "$TMPDIR/cache-b" checkout p --version "$good" --no-lease --memory o.m --disk o.d
check "... byte for byte" 'cmp -s o.m m.$good && cmp -s o.d d.$good'

# A host cache whose own disk is full (a 6 MiB tmpfs under a bound of
# 100 MiB): what it cannot store it skips; checkin and checkout through
# it still move the right bytes, and it stays whole.
C=$TMPDIR/smallcache
mkdir -p "$C"
mount -t tmpfs -o size=6m tmpfs "$C" || skip_all "cannot mount a second tmpfs"
trap 'cleanup_servers; umount "$C" 2>/dev/null || umount -l "$C"; umount "$M" 2>/dev/null || umount -l "$M"' EXIT
rc() { vmcas -q -s "$URL" --cache "$C/cache" --cache-size 100M "$@"; }
img new m.q 1048576 71; img new d.q 7340032 72
ok "a second parcel is made" rc parcel create q --policy all --chunk-size 4K --memory-size 1048576 --disk-size 7340032
ok "a checkin through the full cache succeeds" rc checkin q --memory m.q --disk d.q
ok "a checkout through it succeeds" rc checkout q --no-lease --memory o.m --disk o.d
check "... byte for byte" 'cmp -s o.m m.q && cmp -s o.d d.q'
ok "once more, with what it kept" rc checkout q --no-lease --memory o.m --disk o.d
check "... byte for byte" 'cmp -s o.m m.q && cmp -s o.d d.q'
ok "the full cache verifies" vmcas -s "$C/cache" verify --full
ok "the server stops cleanly" stop_server TERM
ok "the store verifies on its own disk" vmcas -s "$S" verify --full
done_testing
