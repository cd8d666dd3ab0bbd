#!/usr/bin/env bash
# The man pages (man/*.pod, built by make into build/man/): POD without
# errors, man renders every page without a warning, each page has the
# sections a Debian tool's page has, every command has its page, and every
# option a command's --help names is in its page.
. "$(dirname "$0")/../lib.sh"
command -v pod2man >/dev/null && command -v man >/dev/null || skip_all "no pod2man or man"
make -s -C "$TOP" man VMCAS_NO_DEPS=1 >/dev/null || { echo "not ok 1 - make man"; exit 1; }
M=$TOP/build/man
expand() { (cd "$TOP/man" && awk '/^=include /{ f = $2; while ((getline l < f) > 0) print l; close(f); next } { print }' "$1"); }
for src in "$TOP"/man/vmcas*.pod; do
  name=$(basename "$src" .pod)
  expand "$name.pod" > "$TMPDIR/$name.pod"
  check "$name: podchecker finds nothing wrong" "podchecker -warnings '$TMPDIR/$name.pod' >/dev/null 2>'$TMPDIR/pc.err' || { cat '$TMPDIR/pc.err' >&2; false; }"
  _n=$((_n+1))
  MANWIDTH=80 man --warnings=w -l "$M/$name.1" >"$TMPDIR/$name.txt" 2>"$TMPDIR/$name.err"; rc=$?
  if [ $rc = 0 ] && [ ! -s "$TMPDIR/$name.err" ] && [ -s "$TMPDIR/$name.txt" ]; then echo "ok $_n - man -l $name.1 renders, no warning"
  else echo "not ok $_n - man -l $name.1 (rc=$rc)"; sed 's/^/# /' "$TMPDIR/$name.err" | head; _failed=1; fi
  for sec in NAME SYNOPSIS DESCRIPTION OPTIONS "EXIT STATUS" ENVIRONMENT FILES "SEE ALSO"; do
    grep -q "^$sec" "$TMPDIR/$name.txt" || { _n=$((_n+1)); echo "not ok $_n - $name.1 has no $sec section"; _failed=1; }
  done
done
# every command of `vmcas --help` has its page, and the page every option of its --help
cmds=$(vmcas --help | sed -n '/^Commands:/,$ s/^  \([a-z][a-z]*\) .*/\1/p')
check "vmcas --help lists commands" "[ -n '$cmds' ]"
for c in $cmds; do
  check "vmcas-$c.1 exists" "[ -f '$M/vmcas-$c.1' ]"
  [ -f "$TMPDIR/vmcas-$c.txt" ] || continue
  for o in $(vmcas $c --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
    grep -q -- "$o" "$TMPDIR/vmcas-$c.txt" || { _n=$((_n+1)); echo "not ok $_n - vmcas-$c.1 does not document $o of vmcas $c --help"; _failed=1; }
  done
done
for o in $(vmcas --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
  grep -q -- "$o" "$TMPDIR/vmcas.txt" || { _n=$((_n+1)); echo "not ok $_n - vmcas.1 does not document $o"; _failed=1; }
done
# every environment variable the program reads is in vmcas(1), but the
# test suite's own hooks
for v in $(grep -rhoE 'getenv\("VMCAS_[A-Z_]+"\)' "$TOP/src" | sed 's/getenv("\(.*\)")/\1/' | sort -u); do
  case $v in VMCAS_CRASH_AT|VMCAS_TEST_FREE_SPACE) continue ;; esac
  grep -q "B<$v>" "$TOP/man/inc/env.pod" || { _n=$((_n+1)); echo "not ok $_n - man/inc/env.pod does not document $v"; _failed=1; }
done
check "vmcas-checkin.1 says the exit codes" "grep -q 'Usage error' '$TMPDIR/vmcas-checkin.txt'"
check "vmcas-checkin.1 says the environment" "grep -q 'VMCAS_KEYS' '$TMPDIR/vmcas-checkin.txt'"
check "vmcas-checkin.1 says the files" "grep -q 'STORE/index/' '$TMPDIR/vmcas-checkin.txt'"
done_testing
