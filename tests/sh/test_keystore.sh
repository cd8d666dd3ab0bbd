#!/usr/bin/env bash
# The key store cannot be planted, redirected or read by others: a planted
# key file is never adopted by parcel create; a key file, key directory or
# key store root that is a symbolic link, is not the user's, or is open to
# others is refused by parcel create, checkin and checkout. Each refusal
# exits with 1, says why and what to run, and writes nothing to the store.
. "$TOP/tests/lib.sh"
S=$TMPDIR/store
vmcas -s "$S" init >/dev/null
img new m 200000 1; img new d 300000 2
vmcas -s "$S" parcel create p --policy ip --chunk-size 4K --memory-size 200000 --disk-size 300000 >/dev/null
vmcas -q -s "$S" checkin p --memory m --disk d >/dev/null
K=$(ls -d "$VMCAS_KEYS"/*)
P=$K/parcel-p.key
NOBODY=$(id -u nobody 2>/dev/null || echo 65534)
# Checks that need the client to call the new key store functions
# (vc_key_create_or_load_group with the group's check, vc_key_discard):
# set to 0 once it does.
PENDING_CLIENT=0
pending() { _n=$((_n+1)); echo "ok $_n - $1 # SKIP until the client calls the new key store functions"; }

# refused NAME PATTERN CMD...: CMD exits with exactly 1, its stderr matches
# PATTERN (grep -E) and the store is as it was.
refused() { local name=$1 pat=$2; shift 2; _n=$((_n+1)); local rc=0 before after
  before=$(snapshot "$S")
  "$@" >"$TMPDIR/last.out" 2>&1 || rc=$?
  after=$(snapshot "$S")
  if [ $rc -eq 1 ] && grep -qE -- "$pat" "$TMPDIR/last.out" && [ "$before" = "$after" ]; then echo "ok $_n - $name"
  else echo "not ok $_n - $name (rc=$rc, wanted 1 and /$pat/; store $([ "$before" = "$after" ] && echo unchanged || echo CHANGED))"
    sed 's/^/# /' "$TMPDIR/last.out" | head -20; _failed=1; fi; }
create() { vmcas -s "$S" parcel create "$@"; }
checkin() { vmcas -q -s "$S" checkin p --memory m --disk d; }
checkout() { vmcas -q -s "$S" checkout p --memory o.m --disk o.d; }
keyfile() { printf 'vmcas-key 1\n%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$1"; chmod 600 "$1"; }
start=$(snapshot "$S")

# ---- a planted key file is never adopted ----
keyfile "$K/parcel-q.key"; cp "$K/parcel-q.key" planted.copy
refused "parcel create with a planted key file" \
  "a key file for parcel 'q' already exists in .*vmcas never adopts a key it did not make.*mv .*parcel-q.key" \
  create q --policy ip --memory-size 1M --disk-size 1M
refused "parcel create --from with a planted key file" "vmcas never adopts" create q --policy ip --from p
check "the planted key file is left as it was" 'cmp -s "$K/parcel-q.key" planted.copy'
fails "no parcel q was made" "no parcel 'q'" vmcas -s "$S" log q
mv "$K/parcel-q.key" "$K/parcel-q.key.old"
ok "after moving it away, parcel create works" create q --policy ip --memory-size 1M --disk-size 1M
check "with a key of its own" '! cmp -s "$K/parcel-q.key" planted.copy && [ "$(stat -c %a "$K/parcel-q.key")" = 600 ]'
start=$(snapshot "$S")
ln -s "$P" "$K/parcel-r.key"
refused "parcel create with a planted link to another parcel's key" "already exists.*never adopts" \
  create r --policy ip --memory-size 1M --disk-size 1M
ln -s "$TMPDIR/nowhere.key" "$K/parcel-r2.key"
refused "parcel create with a planted dangling link" "never adopts" create r2 --policy ip --memory-size 1M --disk-size 1M
check "nothing was written through the link" '[ ! -e "$TMPDIR/nowhere.key" ]'
rm -f "$K/parcel-r.key" "$K/parcel-r2.key"

# ---- key files ----
mkdir -p "$TMPDIR/elsewhere"; mv "$P" "$TMPDIR/elsewhere/parcel-p.key"; ln -s "$TMPDIR/elsewhere/parcel-p.key" "$P"
refused "checkin with a symlinked key file" "key file .*parcel-p.key is a symbolic link .*replace the link by the file itself" checkin
refused "checkout with a symlinked key file" "is a symbolic link" checkout
rm "$P"; mv "$TMPDIR/elsewhere/parcel-p.key" "$P"
for mode in 640 604 660 644; do
  chmod $mode "$P"
  refused "checkin with a key file of mode $mode" "key file .* is readable (and writable )?by others \(mode 0$mode\).*run: chmod 600 " checkin
done
for mode in 620 602; do
  chmod $mode "$P"
  refused "checkout with a key file of mode $mode" "is writable by others \(mode 0$mode\).*run: chmod 600 " checkout
done
chmod 600 "$P"
mv "$P" p.key; mkfifo "$P"
refused "a FIFO as key file is refused, not waited on" "key file .*parcel-p.key is not a regular file" \
  timeout 20 "$VMCAS" -q -s "$S" checkout p --memory o.m --disk o.d
rm "$P"; mv p.key "$P"

# ---- the store's key directory and the key store root ----
mv "$K" "$TMPDIR/realkeys"; ln -s "$TMPDIR/realkeys" "$K"
refused "checkin with a symlinked key directory" "key directory .* is a symbolic link .*replace the link by the directory itself" checkin
refused "parcel create with a symlinked key directory" "is a symbolic link" create s --policy ip --memory-size 1M --disk-size 1M
check "nothing was created through it" '[ ! -e "$TMPDIR/realkeys/parcel-s.key" ]'
rm "$K"; mv "$TMPDIR/realkeys" "$K"
for mode in 750 705 755 711 770; do
  chmod $mode "$K"
  refused "checkin with a key directory of mode $mode" "key directory .* by others \(mode 0$mode\).*run: chmod 700 " checkin
done
chmod 755 "$K"
refused "parcel create with a key directory of mode 755" "run: chmod 700" create s --policy ip --memory-size 1M --disk-size 1M
check "and no key file was made there" '[ ! -e "$K/parcel-s.key" ]'
chmod 700 "$K"
for mode in 777 775 757 1777; do
  chmod $mode "$VMCAS_KEYS"
  refused "checkout with a key store root of mode $mode" "key store .* is writable by others.*run: chmod go-w " checkout
done
chmod 755 "$VMCAS_KEYS"
ok "a key store root readable by others is fine" checkin
start=$(snapshot "$S")
chmod 700 "$VMCAS_KEYS"
mv "$VMCAS_KEYS" "$TMPDIR/realroot"; ln -s "$TMPDIR/realroot" "$VMCAS_KEYS"
refused "checkin with a symlinked key store root" "key store .* is a symbolic link" checkin
refused "parcel create with a symlinked key store root" "is a symbolic link" create s --policy ip --memory-size 1M --disk-size 1M
rm "$VMCAS_KEYS"; mv "$TMPDIR/realroot" "$VMCAS_KEYS"
chmod 777 "$TMPDIR"
refused "a directory above the key store writable by everyone" "which holds the key store, is writable by everyone.*chmod o-w" checkin
chmod 1777 "$TMPDIR"
ok "one that is sticky, like /tmp, is fine" checkout
chmod 700 "$TMPDIR"

# ---- owned by someone else ----
if [ "$(id -u)" = 0 ]; then
  chown nobody "$P"
  refused "checkin with a key file owned by nobody" "key file .* is owned by uid $NOBODY.*run: chown 0 " checkin
  chown 0 "$P"
  chown nobody "$K"
  refused "checkout with a key directory owned by nobody" "key directory .* is owned by uid $NOBODY.*run: chown 0 " checkout
  refused "parcel create with a key directory owned by nobody" "is owned by uid $NOBODY" \
    create s --policy ip --memory-size 1M --disk-size 1M
  chown 0 "$K"
  chown nobody "$VMCAS_KEYS"
  refused "checkin with a key store root owned by nobody" "key store .* is owned by uid $NOBODY" checkin
  chown 0 "$VMCAS_KEYS"
else
  for i in 1 2 3 4; do _n=$((_n+1)); echo "ok $_n - owned by someone else # SKIP needs root for chown"; done
fi

# ---- group keys: shared by the group's parcels, with the same checks ----
ok "first parcel of a group makes the group's key" create g1 --policy group:staff --memory-size 1M --disk-size 1M
ok "the next one uses it" create g2 --policy group:staff --memory-size 1M --disk-size 1M
G=$K/group-staff.key
check "the group's key is 0600" '[ "$(stat -c %a "$G")" = 600 ]'
start=$(snapshot "$S")
chmod 644 "$G"
refused "a group's key readable by others" "key file .*group-staff.key is readable by others.*chmod 600" \
  create g3 --policy group:staff --memory-size 1M --disk-size 1M
chmod 600 "$G"
if [ $PENDING_CLIENT = 1 ]; then
  pending "after a failed parcel create, no key of it is left behind"
  pending "a planted key for a group the store has no parcel of is not adopted"
  pending "a group key that is not the group's is refused"
else
  ok "after a failed parcel create, no key of it is left behind" \
    create g3 --policy group:staff --memory-size 1M --disk-size 1M
  start=$(snapshot "$S")
  keyfile "$K/group-new.key"
  refused "a planted key for a group the store has no parcel of is not adopted" \
    "a key file for group 'new' already exists .* but this store has no parcel of that group.*never adopts" \
    create n1 --policy group:new --memory-size 1M --disk-size 1M
  mv "$G" "$TMPDIR/staff.key"; keyfile "$G"
  refused "a group key that is not the group's is refused" "key file of group 'staff' holds the wrong key" \
    create g4 --policy group:staff --memory-size 1M --disk-size 1M
  mv "$TMPDIR/staff.key" "$G"
fi

check "no refused command changed the store" '[ "$(snapshot "$S")" = "$start" ]'
ok "with everything in order, checkin works" checkin
ok "and checkout" checkout
check "byte for byte" 'cmp -s o.m m && cmp -s o.d d'
ok "verify after all that" vmcas -s "$S" verify --full
done_testing
