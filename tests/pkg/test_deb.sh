#!/usr/bin/env bash
# The Debian package: debian/ builds with dpkg-buildpackage -us -uc -b (in
# a copy of the tree), holds each file where it belongs, installs cleanly
# with apt install ./vmcas_*.deb, and its installed vmcas runs the demo;
# then it is purged again. The install half runs only as root, with apt,
# when no vmcas package is installed already (VMCAS_TEST_NO_APT=1 skips it).
. "$(dirname "$0")/../lib.sh"
command -v dpkg-buildpackage >/dev/null && command -v dh >/dev/null || skip_all "no dpkg-buildpackage or debhelper"
B=$TMPDIR/src; mkdir -p "$B/vmcas"
(cd "$TOP" && tar --exclude=./build --exclude=./.git -cf - .) | (cd "$B/vmcas" && tar -xf -)
start=$(date +%s)
_n=$((_n+1))
if (cd "$B/vmcas" && DEB_BUILD_OPTIONS="nocheck parallel=2" dpkg-buildpackage -us -uc -b) >"$TMPDIR/build.log" 2>&1; then
  echo "ok $_n - dpkg-buildpackage -us -uc -b ($(( $(date +%s) - start )) s)"
else echo "not ok $_n - dpkg-buildpackage -us -uc -b"; tail -30 "$TMPDIR/build.log" | sed 's/^/# /'; done_testing; fi
deb=$(ls "$B"/vmcas_*.deb 2>/dev/null | head -1)
check "it made vmcas_*.deb" "[ -f '$deb' ]"
dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|' > "$TMPDIR/contents"
for f in /usr/bin/vmcas /usr/share/man/man1/vmcas.1.gz /usr/share/man/man1/vmcas-checkin.1.gz \
         /usr/share/man/man1/vmcas-serve.1.gz /usr/share/man/man1/vmcas-workspace.1.gz \
         /usr/share/bash-completion/completions/vmcas /lib/systemd/system/vmcas.service \
         /lib/systemd/system/vmcas.socket /usr/lib/sysusers.d/vmcas.conf /usr/share/vmcas/scripts/demo.sh \
         /usr/share/doc/vmcas/schema/stat.schema.json /usr/share/doc/vmcas/copyright; do
  check "the package holds $f" "grep -qxF '$f' '$TMPDIR/contents'"
done
check "the package holds docs/json.md (compressed or not)" "grep -q '^/usr/share/doc/vmcas/json.md' '$TMPDIR/contents'"
check "Depends names the shared libraries" "dpkg-deb -f '$deb' Depends | grep -q libjansson"
check "the unit runs /usr/bin/vmcas" "dpkg-deb --fsys-tarfile '$deb' | tar -xOf - ./lib/systemd/system/vmcas.service | grep -q '^ExecStart=/usr/bin/vmcas '"

if [ "$(id -u)" != 0 ] || [ -n "${VMCAS_TEST_NO_APT:-}" ] || ! command -v apt-get >/dev/null; then
  echo "ok $((_n+1)) - # SKIP apt install (not root, or VMCAS_TEST_NO_APT)"; _n=$((_n+1)); done_testing
fi
if dpkg-query -W -f='${Status}' vmcas 2>/dev/null | grep -q 'ok installed'; then
  echo "ok $((_n+1)) - # SKIP apt install: a vmcas package is installed already"; _n=$((_n+1)); done_testing
fi
purge() { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 purge -y -qq vmcas >/dev/null 2>&1; }
trap purge EXIT
ok "apt install ./vmcas_*.deb" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "$deb"
check "vmcas is on PATH" "[ \"\$(type -P vmcas)\" = /usr/bin/vmcas ] && /usr/bin/vmcas --version | grep -q 'vmcas 0.2'"
check "man vmcas-checkin finds the page" "man -w vmcas-checkin | grep -q /usr/share/man/man1/vmcas-checkin.1"
check "the service's user exists" "getent passwd vmcas >/dev/null"
ok "systemd-analyze verify of the installed unit" systemd-analyze verify --man=no /lib/systemd/system/vmcas.service
_n=$((_n+1))
if (cd "$TMPDIR" && env -u VMCAS VMCAS_KEYS="$TMPDIR/demokeys" DEMO_DIR="$TMPDIR/demo" bash /usr/share/vmcas/scripts/demo.sh) >"$TMPDIR/demo.log" 2>&1 &&
   grep -q "identical to the trace" "$TMPDIR/demo.log" && [ -f "$TMPDIR/demo/report/index.html" ]; then
  echo "ok $_n - the installed vmcas runs the demo"
else echo "not ok $_n - the installed vmcas runs the demo"; tail -20 "$TMPDIR/demo.log" | sed 's/^/# /'; _failed=1; fi
check "the demo ran /usr/bin/vmcas" "! grep -q '$TOP' '$TMPDIR/demo.log'"
ok "apt purge vmcas" purge
check "purged: no /usr/bin/vmcas" "[ ! -e /usr/bin/vmcas ]"
trap - EXIT
done_testing
