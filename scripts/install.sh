#!/usr/bin/env bash
# `make install` and `make uninstall`: one list of what is installed where,
# so that uninstall removes exactly what install put there.
# Usage: scripts/install.sh install|uninstall|list   (directories from the
# environment, as the Makefile passes them; DESTDIR in front of each).
set -euo pipefail
action=${1:?usage: install.sh install|uninstall|list}
: "${DESTDIR:=}" "${PREFIX:=/usr/local}"
: "${BINDIR:=$PREFIX/bin}" "${MANDIR:=$PREFIX/share/man}" "${DOCDIR:=$PREFIX/share/doc/vmcas}"
: "${DATADIR:=$PREFIX/share/vmcas}" "${BASHCOMPDIR:=$PREFIX/share/bash-completion/completions}"
: "${SYSTEMDUNITDIR:=$PREFIX/lib/systemd/system}" "${SYSUSERSDIR:=$PREFIX/lib/sysusers.d}"
: "${NBDKIT_PLUGINDIR:=$PREFIX/lib/nbdkit/plugins}" "${NBDKIT_PLUGIN:=build/nbdkit-vmcas-plugin.so}"
: "${BUILD:=build}"

# SOURCE DEST MODE, one a line
list() {
  echo "$BUILD/vmcas $BINDIR/vmcas 0755"
  for m in "$BUILD"/man/*.1; do echo "$m $MANDIR/man1/$(basename "$m") 0644"; done
  echo "dist/vmcas.bash-completion $BASHCOMPDIR/vmcas 0644"
  echo "dist/vmcas.service.in $SYSTEMDUNITDIR/vmcas.service 0644"
  echo "dist/vmcas.socket $SYSTEMDUNITDIR/vmcas.socket 0644"
  echo "dist/vmcas.sysusers $SYSUSERSDIR/vmcas.conf 0644"
  echo "scripts/demo.sh $DATADIR/scripts/demo.sh 0755"
  echo "scripts/demo-analyze.sh $DATADIR/scripts/demo-analyze.sh 0755"
  echo "README.md $DOCDIR/README.md 0644"
  for d in docs/*.md; do echo "$d $DOCDIR/$(basename "$d") 0644"; done
  for s in docs/schema/*.json; do echo "$s $DOCDIR/schema/$(basename "$s") 0644"; done
  # the nbdkit plugin, where nbdkit looks for plugins, if it was built
  if [ -f "$NBDKIT_PLUGIN" ] || [ "$action" = uninstall ]; then
    echo "$NBDKIT_PLUGIN $NBDKIT_PLUGINDIR/nbdkit-vmcas-plugin.so 0755"
  fi
}

case $action in
  list) list ;;
  install)
    [ -x "$BUILD/vmcas" ] || { echo "install: $BUILD/vmcas is not built (run make)" >&2; exit 1; }
    list | while read -r src dst mode; do
      if [[ $src == *.in ]]; then   # @BINDIR@: where the command is installed
        mkdir -p "$(dirname "$DESTDIR$dst")"
        sed "s|@BINDIR@|$BINDIR|g" "$src" > "$DESTDIR$dst.tmp" && chmod "$mode" "$DESTDIR$dst.tmp"
        mv "$DESTDIR$dst.tmp" "$DESTDIR$dst"
      else
        install -D -m "$mode" "$src" "$DESTDIR$dst"
      fi
      echo "  $DESTDIR$dst"
    done ;;
  uninstall)
    list | while read -r src dst mode; do
      if [ -e "$DESTDIR$dst" ] || [ -L "$DESTDIR$dst" ]; then rm -f "$DESTDIR$dst"; echo "  removed $DESTDIR$dst"; fi
    done
    # vmcas's own directories, once empty
    for d in "$DOCDIR/schema" "$DOCDIR" "$DATADIR/scripts" "$DATADIR"; do
      rmdir "$DESTDIR$d" 2>/dev/null || true
    done ;;
  *) echo "usage: install.sh install|uninstall|list" >&2; exit 2 ;;
esac
