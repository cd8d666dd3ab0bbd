#!/usr/bin/env bash
# make install puts each file where it belongs, honouring PREFIX and
# DESTDIR (the nbdkit plugin too, if it was built, into nbdkit's plugin
# directory); make uninstall removes exactly those files.
. "$(dirname "$0")/../lib.sh"
D=$TMPDIR/dest
mk() { make -s -C "$TOP" VMCAS_NO_DEPS=1 "$@"; }
ok "make install DESTDIR PREFIX=/usr" mk install DESTDIR="$D" PREFIX=/usr NBDKIT_PLUGIN=/nonexistent.so \
  SYSTEMDUNITDIR=/lib/systemd/system
(cd "$D" && find . -type f | sed 's|^\.||' | sort) > "$TMPDIR/got"
{ echo /usr/bin/vmcas
  for p in "$TOP"/man/vmcas*.pod; do echo "/usr/share/man/man1/$(basename "$p" .pod).1"; done
  echo /usr/share/bash-completion/completions/vmcas
  echo /lib/systemd/system/vmcas.service; echo /lib/systemd/system/vmcas.socket
  echo /usr/lib/sysusers.d/vmcas.conf
  echo /usr/share/vmcas/scripts/demo.sh; echo /usr/share/vmcas/scripts/demo-analyze.sh
  echo /usr/share/doc/vmcas/README.md
  for f in "$TOP"/docs/*.md; do echo "/usr/share/doc/vmcas/$(basename "$f")"; done
  for f in "$TOP"/docs/schema/*.json; do echo "/usr/share/doc/vmcas/schema/$(basename "$f")"; done
} | sort > "$TMPDIR/want"
check "exactly the expected files, each where it belongs" "diff '$TMPDIR/want' '$TMPDIR/got' >&2"
check "the command is executable" "[ -x '$D/usr/bin/vmcas' ] && '$D/usr/bin/vmcas' --version | grep -q vmcas"
check "the unit runs the installed command" "grep -q '^ExecStart=/usr/bin/vmcas ' '$D/lib/systemd/system/vmcas.service'"
check "man pages render from where they are installed" "MANWIDTH=80 man -l '$D/usr/share/man/man1/vmcas-checkin.1' | grep -q 'keep-lease'"
check "man finds them by name under the prefix" "MANPATH='$D/usr/share/man' man -w vmcas-serve | grep -q '$D'"
check "modes: 0755 command, 0644 pages" "[ \$(stat -c %a '$D/usr/bin/vmcas') = 755 ] && [ \$(stat -c %a '$D/usr/share/man/man1/vmcas.1') = 644 ]"
ok "make uninstall" mk uninstall DESTDIR="$D" PREFIX=/usr SYSTEMDUNITDIR=/lib/systemd/system
check "uninstall leaves no file" "[ -z \"\$(find '$D' -type f)\" ]"
check "and none of vmcas's own directories" "[ ! -e '$D/usr/share/doc/vmcas' ] && [ ! -e '$D/usr/share/vmcas' ]"

# the plugin, when built, goes where nbdkit looks for plugins
mkdir -p "$TMPDIR/pl"; printf 'ELF' > "$TMPDIR/pl/plugin.so"
pd=$(pkg-config --variable=plugindir nbdkit 2>/dev/null || echo /usr/local/lib/nbdkit/plugins)
ok "make install with the plugin" mk install DESTDIR="$D" NBDKIT_PLUGIN="$TMPDIR/pl/plugin.so"
check "the plugin is in nbdkit's plugin directory" "[ -f '$D$pd/nbdkit-vmcas-plugin.so' ]"
check "default PREFIX is /usr/local" "[ -x '$D/usr/local/bin/vmcas' ] && [ -f '$D/usr/local/share/man/man1/vmcas.1' ]"
n_files=$(find "$D" -type f | wc -l)
ok "make uninstall with the plugin" mk uninstall DESTDIR="$D" NBDKIT_PLUGIN="$TMPDIR/pl/plugin.so"
check "it removed all $n_files files" "[ -z \"\$(find '$D' -type f)\" ]"
# a file of someone else's beside ours stays
mk install DESTDIR="$D" >/dev/null; touch "$D/usr/local/share/man/man1/other.1"
mk uninstall DESTDIR="$D" >/dev/null
check "uninstall leaves others' files alone" "[ -f '$D/usr/local/share/man/man1/other.1' ] && [ \$(find '$D' -type f | wc -l) = 1 ]"
done_testing
