#!/usr/bin/env bash
# The systemd unit of `vmcas serve`: dist/vmcas.service and vmcas.socket
# pass systemd-analyze verify and have the hardening the README promises;
# the server speaks systemd's notify protocol (READY=1 once it answers,
# RELOADING=1/READY=1 around SIGHUP, STOPPING=1), serves a socket passed
# by socket activation, and restarts under load without losing a checkin
# (tests/tools/sd_harness.py plays systemd's part).
. "$(dirname "$0")/../lib.sh"
command -v systemd-analyze >/dev/null || skip_all "no systemd-analyze"
U=$TMPDIR/units; mkdir -p "$U"
sed "s|@BINDIR@|$TOP/build|g" "$TOP/dist/vmcas.service.in" > "$U/vmcas.service"
cp "$TOP/dist/vmcas.socket" "$U/"
# verify complains of a User= unknown on this host: the package makes it
_n=$((_n+1)); rc=0
(cd "$U" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no ./vmcas.service ./vmcas.socket) >"$TMPDIR/verify.log" 2>&1 || rc=$?
if [ $rc = 0 ] && ! grep -v 'Failed to resolve user\|vmcas.*user' "$TMPDIR/verify.log" | grep -q .; then
  echo "ok $_n - systemd-analyze verify vmcas.service vmcas.socket"
else echo "not ok $_n - systemd-analyze verify (rc=$rc)"; sed 's/^/# /' "$TMPDIR/verify.log"; _failed=1; fi
for d in Type=notify User=vmcas ProtectSystem=strict PrivateTmp=yes StateDirectory=vmcas NoNewPrivileges=yes \
         ProtectHome=yes ExecReload= RuntimeDirectory=vmcas; do
  check "vmcas.service has $d" "grep -q '^$d' '$U/vmcas.service'"
done
check "no path outside the store is writable" "! grep -q '^ReadWritePaths' '$U/vmcas.service'"
check "sysusers makes the user" "grep -q '^u vmcas ' '$TOP/dist/vmcas.sysusers'"

S=$TMPDIR/store
vmcas -s "$S" init >/dev/null
vmcas -s "$S" user add root --admin | tail -1 > "$TMPDIR/token"
for i in 0 1 2 3; do
  mkimg "$TMPDIR/m$i" 3000000 m$i; mkimg "$TMPDIR/d$i" 2000000 d$i
  vmcas -s "$S" parcel create p$i --policy ip --chunk-size 16K --memory-size 3000000 --disk-size 2000000 >/dev/null
done
/usr/bin/python3 "$TOP/tests/tools/sd_harness.py" "$VMCAS" "$S" "$TMPDIR" > "$TMPDIR/harness.tap" || _failed=1
# the harness's TAP lines, numbered on from here
while IFS= read -r l; do
  case $l in "ok "*|"not ok "*) _n=$((_n+1)); echo "$l" | sed -E "s/^(not )?ok [0-9]+/\1ok $_n/";; *) echo "$l";; esac
done < "$TMPDIR/harness.tap"
check "the store is sound after the restarts" "vmcas -s '$S' verify >/dev/null"
check "every checkin is a version: 3 per parcel" '[ "$(vmcas -s "$S" log p0 --json | grep -c "\"version\":")" = 3 ]'
echo "1..$_n"; exit $_failed
