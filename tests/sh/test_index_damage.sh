#!/usr/bin/env bash
# A damaged index (STORE/index/data.mdb) never crashes vmcas. For each
# damage, every command ends by itself (exit 0 or 1, never a signal, a
# sanitizer report or a core file): a command that needs what is damaged
# fails with a message that names the damage and says to run 'vmcas verify
# --reindex'; one that does not gives right answers (a checkout, the right
# bytes). verify --reindex then rebuilds a usable index, and where the
# catalog survived in the damaged file every version checks out byte for
# byte. verify --full also reports a missing or damaged packs/N/domain
# file with the repair that fixes it.
. "$TOP/tests/lib.sh"
ulimit -c unlimited 2>/dev/null || true
S=$TMPDIR/store
vmcas -s "$S" init >/dev/null
img new m 300000 1; img new d 500000 2; cp d d2; img mutate d2 3 20
vmcas -s "$S" parcel create p --policy ip --chunk-size 4K --compress none --memory-size 300000 --disk-size 500000 >/dev/null
vmcas -s "$S" parcel create q --policy all --chunk-size 4K --compress none --memory-size 300000 --disk-size 500000 >/dev/null
vmcas -q -s "$S" checkin p --memory m --disk d >/dev/null
vmcas -q -s "$S" checkin p --memory m --disk d2 >/dev/null
vmcas -q -s "$S" checkin q --memory m --disk d >/dev/null
# A last commit that touches no version, so that both snapshots LMDB keeps
# (one per meta page) hold all of them.
vmcas -s "$S" parcel create r --policy ip --memory-size 4096 --disk-size 4096 >/dev/null
ok "verify --full on a clean store" vmcas -s "$S" verify --full
CLEAN=$TMPDIR/clean; cp -a "$S" "$CLEAN"
DB=index/data.mdb
PAGES=$(( $(stat -c %s "$CLEAN/$DB") / 4096 ))
# the versions and the images they hold
declare -A IMG=( [p:1]="m d" [p:2]="m d2" [q:1]="m d" )

# run STORE CMD...: runs vmcas in its own copy of the damaged store; sets rc
# and out. A signal, a sanitizer's report or a core file fails the test.
bad_end=0
run() { local st=$1; shift; rm -rf "$TMPDIR/w"; cp -a "$st" "$TMPDIR/w"; rm -f o.m o.d
  rc=0; "$VMCAS" -q -s "$TMPDIR/w" "$@" >"$TMPDIR/run.out" 2>&1 || rc=$?; out=$(cat "$TMPDIR/run.out")
  if [ $rc -gt 1 ] || grep -qE "Sanitizer|runtime error|Segmentation|Bus error|Aborted" "$TMPDIR/run.out" ||
     ls core* "$TMPDIR"/w/core* >/dev/null 2>&1; then
    echo "# $* ended badly (rc=$rc):"; sed 's/^/#   /' "$TMPDIR/run.out" | head -8; bad_end=1; rm -f core*
  fi; }
# every command on damaged store W; DAMAGED=1 if verify must find damage.
# Sets failed_clearly to the commands that failed with the damage message.
every_command() { local w=$1 name=$2 need=$3
  local unclear=0 wrong=0 ran=""
  for c in "log p" "parcel list" "stat" "checkout p --version 2 --no-lease" "checkout q --no-lease" "checkin p" \
           "verify" "verify --full" "gc --grace 0" "prune p --keep 1"; do
    set -- $c
    case $1 in
      checkout) run "$w" "$@" --memory o.m --disk o.d ;;
      checkin)  run "$w" "$@" --memory m --disk d ;;
      *)        run "$w" "$@" ;;
    esac
    if [ $rc = 1 ]; then
      ran="$ran $1"
      # a clear message: says what is damaged and what to run (verify's
      # DAMAGE lines and their repairs count)
      if ! echo "$out" | grep -qE "^vmcas: .*(index is damaged|index is empty|index is missing)|^DAMAGE: " ||
         ! echo "$out" | grep -q "vmcas verify --reindex"; then
        echo "# $name: '$c' failed without a clear message:"; echo "$out" | sed 's/^/#   /' | head -5; unclear=1
      fi
    elif [ $rc = 0 ] && [ "$1" = checkout ]; then
      local pv=$2:${4:-1}; [ "$2" = q ] && pv=q:1
      set -- ${IMG[$pv]}
      cmp -s o.m "$1" && cmp -s o.d "$2" || { echo "# $name: '$c' wrote wrong bytes"; wrong=1; }
    elif [ $rc = 0 ] && [ "$need" = all ]; then
      echo "# $name: '$c' succeeded on a store it should refuse"; unclear=1
    fi
  done
  check "$name: every command ends with exit 0 or 1, no signal, no core" '[ $bad_end = 0 ]'
  check "$name: every failure says the index is damaged and to run verify --reindex" '[ $unclear = 0 ]'
  check "$name: no command writes wrong bytes" '[ $wrong = 0 ]'
  bad_end=0; failed_clearly=$ran; }
# verify --reindex, then: verify --full passes, and every version the
# recovered catalog lists checks out byte for byte; catalog=lost if the
# catalog could not be recovered (then reindex says so, exits 1).
repairs() { local w=$1 name=$2 catalog=$3
  rm -rf "$TMPDIR/r"; cp -a "$w" "$TMPDIR/r"
  local rrc=0; "$VMCAS" -q -s "$TMPDIR/r" verify --reindex >"$TMPDIR/re.out" 2>&1 || rrc=$?
  local said_lost=0
  grep -q "catalog could not be recovered from the damaged index" "$TMPDIR/re.out" && said_lost=1
  if [ "$catalog" = lost ]; then
    check "$name: verify --reindex says the catalog could not be recovered (exit 1)" '[ $rrc = 1 ] && [ $said_lost = 1 ]'
  elif [ "$catalog" = some ]; then
    # several pages scribbled may have hit the catalog in both snapshots
    check "$name: verify --reindex repairs it (exit 0), or says the catalog was lost or that 'vmcas repair' rebuilds it (exit 1)" \
      '[ $rrc = 0 ] || { [ $rrc = 1 ] && { [ $said_lost = 1 ] || grep -q "vmcas repair. rebuilds the catalog" "$TMPDIR/re.out"; }; }'
    [ $said_lost = 1 ] && echo "# $name: the catalog was lost"
  else
    check "$name: verify --reindex repairs it (exit 0)" '[ $rrc = 0 ]'
  fi
  [ $rrc -gt 1 ] && sed 's/^/#   /' "$TMPDIR/re.out" | head -8
  grep -qE "^reindexed [0-9]+ chunks" "$TMPDIR/re.out"
  check "$name: ... and indexes the chunks again" '[ $? = 0 ]'
  vmcas -s "$TMPDIR/r" verify --full >"$TMPDIR/v.out" 2>&1
  check "$name: verify --full passes after the repair" '[ $? = 0 ]' || sed 's/^/#   /' "$TMPDIR/v.out" | head -5
  local lost=0 n=0
  for pv in "${!IMG[@]}"; do
    local par=${pv%%:*} ver=${pv#*:}
    vmcas -s "$TMPDIR/r" log $par --json 2>/dev/null | grep -q "\"version\": $ver," || continue
    n=$((n + 1)); set -- ${IMG[$pv]}; rm -f o.m o.d
    vmcas -q -s "$TMPDIR/r" checkout $par --version $ver --no-lease --memory o.m --disk o.d && cmp -s o.m "$1" && cmp -s o.d "$2" ||
      { echo "# $name: $pv does not check out after the repair"; lost=1; }
  done
  if [ "$catalog" = whole ]; then
    check "$name: all 3 versions check out byte for byte" '[ $lost = 0 ] && [ $n = 3 ]'
  elif [ "$catalog" = some ]; then
    check "$name: the versions the catalog kept ($n) check out byte for byte" '[ $lost = 0 ]'
  fi
  # whatever the damage, repair rebuilds index and catalog from the packs
  rm -rf "$TMPDIR/r"; cp -a "$w" "$TMPDIR/r"
  "$VMCAS" -q -s "$TMPDIR/r" repair >"$TMPDIR/rp.out" 2>&1
  check "$name: vmcas repair rebuilds index and catalog (exit 0)" '[ $? = 0 ]' || sed 's/^/#   /' "$TMPDIR/rp.out" | head -5
  lost=0
  for pv in "${!IMG[@]}"; do
    local par=${pv%%:*} ver=${pv#*:}; set -- ${IMG[$pv]}; rm -f o.m o.d
    vmcas -q -s "$TMPDIR/r" checkout $par --version $ver --no-lease --memory o.m --disk o.d && cmp -s o.m "$1" && cmp -s o.d "$2" ||
      { echo "# $name: $pv does not check out after vmcas repair"; lost=1; }
  done
  check "$name: ... and every version checks out byte for byte after it" '[ $lost = 0 ]'; }

damage() { rm -rf "$TMPDIR/dmg"; cp -a "$CLEAN" "$TMPDIR/dmg"; }
# scribble FILE PAGE SEED [OFF LEN]: random bytes over a page (or a part of it)
scribble() { perl -e 'my ($f,$pg,$seed,$off,$len)=@ARGV; srand($seed); $off//=0; $len//=4096;
  open(my $h,"+<",$f) or die; seek($h,$pg*4096+$off,0); print $h join("",map{chr(int(rand(256)))}1..$len)' "$@"; }
zero() { dd if=/dev/zero of="$1" bs=4096 seek="$2" count="$3" conv=notrunc status=none; }

# ---- damage the whole file, the way a disk or a hand can -------------------------------
W=$TMPDIR/dmg
damage; truncate -s $((PAGES * 4096 / 2)) "$W/$DB"
every_command "$W" "cut in half" all
run "$W" stat; echo "$out" | grep -q "is $((PAGES * 4096 / 2)) bytes, but its pages in use need"
check "cut in half: the message gives the file's size and what its pages need" '[ $? = 0 ]'
# (whether the catalog's pages lie in the half that is left depends on
# where LMDB put them, which the random tags of this store decide: lost,
# or recovered in part, both said so)
repairs "$W" "cut in half" some

damage; truncate -s 4096 "$W/$DB"
every_command "$W" "cut to one page" all
repairs "$W" "cut to one page" lost

damage; truncate -s 0 "$W/$DB"
every_command "$W" "cut to nothing" all
run "$W" log p; echo "$out" | grep -q "index is empty"
check "cut to nothing: not taken for a new, empty index" '[ $? = 0 ]'
repairs "$W" "cut to nothing" lost

damage; zero "$W/$DB" 0 1
every_command "$W" "meta page 0 zeroed" all
repairs "$W" "meta page 0 zeroed" whole
damage; zero "$W/$DB" 1 1
every_command "$W" "meta page 1 zeroed" all
repairs "$W" "meta page 1 zeroed" whole

damage; zero "$W/$DB" 0 2
every_command "$W" "both meta pages zeroed" all
repairs "$W" "both meta pages zeroed" lost

damage; rm "$W/$DB"; mkdir "$W/$DB"
every_command "$W" "data.mdb a directory" all
repairs "$W" "data.mdb a directory" lost

# lock.mdb holds no data: LMDB makes it again, and everything works
damage; rm "$W/index/lock.mdb"
every_command "$W" "lock.mdb deleted" none
check "lock.mdb deleted: no command fails" '[ -z "$failed_clearly" ]'

# ---- scribbled pages: whatever they hit, nothing crashes ---------------------------------
# Random pages, whole or in part; several at once. Those that hit only free
# pages change nothing (verify passes, every command works); the others are
# found by verify, and every write refuses the store.
scribbled() { local name=$1
  run "$W" verify --full
  if [ $rc = 0 ]; then
    every_command "$W" "$name (free pages only)" none
    check "$name (free pages only): every command works" '[ -z "$failed_clearly" ]'
  else
    every_command "$W" "$name" some
    # a command that needs nothing the damage hit (a value of another
    # parcel, a table it does not read) may go on: the repair below shows
    # that none harmed anything
    check "$name: verify finds it, and what needs the damaged part refuses (refused:$failed_clearly)" \
      '[ -n "$failed_clearly" ]'
    repairs "$W" "$name" some
  fi; }
# pick SEED N: N page numbers past the meta pages, drawn at random
pick() { perl -e 'my ($seed, $n, $pages) = @ARGV; srand($seed); print join(" ", map { 2 + int(rand($pages - 2)) } 1..$n)' "$1" "$2" "$PAGES"; }
for seed in 1 2 3 4 5 6; do
  damage; pg=$(pick $seed 1)
  if [ $((seed % 2)) = 0 ]; then scribble "$W/$DB" $pg $seed 16 2048; else scribble "$W/$DB" $pg $seed; fi
  scribbled "scribbled page $pg (seed $seed)"
done
for seed in 7 8 9; do
  damage; pages=""
  for pg in $(pick $seed 6); do pages="$pages $pg"; scribble "$W/$DB" $pg $((seed * 10 + pg)); done
  scribbled "scribbled pages$pages (seed $seed)"
done

# Pages chosen by what they hold: the one with parcel p's record (its header),
# and an index page with a chunk's entry (its nodes, the header left whole:
# the open does not walk the chunk index, LMDB reads the garbage).
# page_of HEX: the page of the first copy of those bytes in the clean data.mdb
page_of() { perl -0777 -ne 'BEGIN { $t = pack("H*", shift) } if (/\Q$t\E/) { print int($-[0] / 4096), "\n" }' "$1" "$CLEAN/$DB"; }
pg=$(page_of 56504152)   # "VPAR", the magic of a parcel record (src/repo/vc_repo.h)
damage; scribble "$W/$DB" $pg 11 0 16
scribbled "the page of a parcel record ($pg)"
rec_tag=$(od -An -tx1 -j $((64 + 16)) -N 32 "$(ls -S "$CLEAN"/packs/*/*.pack | head -1)" | tr -d ' \n')
dom=$(basename "$(dirname "$(ls -S "$CLEAN"/packs/*/*.pack | head -1)")")
pg=$(page_of "$(printf %016x "$dom")$rec_tag")   # an index key: domain BE64, tag
if [ -n "$pg" ]; then
  damage; scribble "$W/$DB" $pg 12 1024 3072
  scribbled "the nodes of an index page ($pg)"
  run "$W" verify; echo "$out" | grep -q "DAMAGE: the index file is damaged in table index"
  check "verify names the damaged table" '[ $? = 0 ]'
else
  check "found the index page to damage" false
fi

# ---- packs/N/domain: read by verify, repaired by reindex ---------------------------------
damage
doms=$(ls -d "$W"/packs/[0-9]* | head -2)
d1=$(echo "$doms" | sed -n 1p); d2=$(echo "$doms" | sed -n 2p)
rm "$d1/domain"; img flip "$d2/domain" 20
fails "verify --full reports a missing and a damaged domain file" "packs/$(basename "$d1")/domain is missing" vmcas -s "$W" verify --full
grep -q "packs/$(basename "$d2")/domain is damaged" "$TMPDIR/last.out"
check "... both of them" '[ $? = 0 ]'
grep -A1 "domain is missing" "$TMPDIR/last.out" | grep -q "repair: 'vmcas verify --reindex' fixes this"
check "... each with the repair that fixes it" '[ $? = 0 ]'
grep -q "'vmcas verify --reindex' repairs 2" "$TMPDIR/last.out"
check "... and the summary counts them" '[ $? = 0 ]'
ok "verify --reindex writes them again" vmcas -s "$W" verify --reindex
grep -q "wrote 2 domain files again" "$TMPDIR/last.out"
check "... and says so" '[ $? = 0 ]'
ok "verify --full is clean again" vmcas -s "$W" verify --full
check "the domain files read back" '[ -s "$d1/domain" ] && grep -q "^vmcas-domain" "$d1/domain"'
done_testing
