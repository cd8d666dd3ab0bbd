#!/usr/bin/env bash
# A full disk can always be reclaimed. On a small file system made for the
# test (a 40 MiB tmpfs, and a 48 MiB ext4 image on a loop device: tmpfs
# punches holes in pages, ext4 in 1 KiB blocks, and vmcas writes to it
# with direct I/O), checkins fill the disk until one fails for lack of
# space; it must say so clearly and leave the store whole. Then the disk
# is filled to the last byte, prune drops the old versions and gc must
# free their space; a new checkin succeeds and everything reads back byte
# for byte. A second round makes gc believe it has room to rewrite
# (VMCAS_TEST_FREE_SPACE), so that its compaction runs out of space midway
# and must give up cleanly and punch instead. A third shows what
# STORE/reserve is for: with an index that has no free page left (LMDB
# must grow its file to commit anything) and the disk at 100 %, gc fails
# cleanly without the reserve and succeeds with it.
. "$TOP/tests/lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root to mount a small file system"
mounts=()
cleanup() { for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done; }
trap cleanup EXIT

# free KiB on the file system of $1
avail() { df -Pk "$1" | awk 'NR == 2 { print $4 }'; }

# fill M: checkins of new versions of parcel $par (default p) until one
# fails; sets $good to the last version checked in, whose images are
# m.$good and d.$good.
fill() {
  local M=$1 S=$1/store i
  for i in $(seq 1 80); do
    v=$((v + 1))
    cp "m.$good" "m.$v"; cp "d.$good" "d.$v"
    img mutate "m.$v" "$v" 60; img mutate "d.$v" "$((v + 500))" 60
    if ! vmcas -q -s "$S" checkin "${par:-p}" --memory "m.$v" --disk "d.$v" >"$TMPDIR/ci.out" 2>&1; then
      rm -f "m.$v" "d.$v"
      return 0
    fi
    good=$v
  done
  return 1
}

run() {
  local fs=$1 M=$2 S=$2/store
  v=1 good=1
  vmcas -s "$S" init >/dev/null
  img new m.1 1048576 1; img new d.1 3145728 2
  vmcas -s "$S" parcel create p --policy ip --chunk-size 16K --memory-size 1048576 --disk-size 3145728 >/dev/null
  vmcas -q -s "$S" checkin p --memory m.1 --disk d.1 >/dev/null
  first=$good
  fill "$M"; rc=$?
  check "$fs: checkins fill the disk until one fails (after version $good)" '[ $rc = 0 ] && [ $good -gt 4 ]'
  check "$fs: the failed checkin says the disk is full and what to do" \
    'grep -qE "no space left on the store.s disk.*vmcas prune.*vmcas gc" "$TMPDIR/ci.out"'
  sed 's/^/# /' "$TMPDIR/ci.out"
  ok "$fs: the store verifies after the failed checkin" vmcas -s "$S" verify --full
  ok "$fs: the latest version is still version $good" vmcas -q -s "$S" checkout p --memory o.m --disk o.d
  check "$fs: ... and reads back byte for byte" 'cmp -s o.m m.$good && cmp -s o.d d.$good'

  # Now to the last byte, outside the store (gc must not count on slack).
  dd if=/dev/zero of="$M/filler" bs=64k 2>/dev/null; sync
  check "$fs: the disk is full ($(avail "$M") KiB free)" '[ "$(avail "$M")" -lt 64 ]'
  ok "$fs: prune on the full disk" vmcas -s "$S" prune p --keep 1
  ok "$fs: gc on the full disk" vmcas -q -s "$S" gc --grace 0 --json
  out=$(cat "$TMPDIR/last.out"); echo "$out" | tr -d '\n' | sed 's/^/# /'; echo
  before=$(echo "$out" | json disk_bytes_before); after=$(echo "$out" | json disk_bytes_after)
  check "$fs: gc frees the pruned versions' chunks" '[ "$(echo "$out" | json chunks_freed)" -gt 500 ]'
  check "$fs: gc frees their space on disk ($before -> $after bytes)" '[ "$after" -lt $((before / 3)) ]'
  check "$fs: the file system has room again ($(avail "$M") KiB free)" '[ "$(avail "$M")" -gt 16384 ]'
  live=$(vmcas -s "$S" stat --json | json data_bytes)
  check "$fs: what is left on disk is the live data ($after bytes for $live)" \
    '[ "$after" -lt $((live + live / 4 + 262144)) ]'
  ok "$fs: the store verifies after gc" vmcas -s "$S" verify --full
  v=$((v + 1)); cp "m.$good" "m.$v"; cp "d.$good" "d.$v"
  img mutate "m.$v" "$v" 60; img mutate "d.$v" "$((v + 500))" 60
  ok "$fs: a checkin succeeds after gc" vmcas -q -s "$S" checkin p --memory "m.$v" --disk "d.$v"
  prev=$good; good=$v
  vmcas -q -s "$S" checkout p --memory o.m --disk o.d
  check "$fs: the new version reads back byte for byte" 'cmp -s o.m m.$good && cmp -s o.d d.$good'
  vmcas -q -s "$S" checkout p --version "$prev" --memory o.m --disk o.d
  check "$fs: the version kept by prune reads back byte for byte" 'cmp -s o.m m.$prev && cmp -s o.d d.$prev'
  ok "$fs: verify --full" vmcas -s "$S" verify --full

  # Round two: gc thinks it has room to rewrite, and runs out midway.
  rm -f "$M/filler"
  fill "$M"; rc=$?
  check "$fs: round two: the disk fills up again (after version $good)" '[ $rc = 0 ]'
  dd if=/dev/zero of="$M/filler" bs=64k 2>/dev/null; sync
  vmcas -s "$S" prune p --keep 1 >/dev/null
  VMCAS_TEST_FREE_SPACE=$((100 << 30)) ok "$fs: gc whose rewrite runs out of space" vmcas -s "$S" gc --grace 0
  sed 's/^/# /' "$TMPDIR/last.out"
  check "$fs: ... gives the rewrite up and punches instead" 'grep -q "not rewritten for lack of space" "$TMPDIR/last.out"'
  check "$fs: ... and leaves no empty pack behind" \
    '[ -z "$(find "$S/packs" -name "*.pack" -size -2k)" ] && [ -z "$(find "$S" -name "*.tmp")" ]'
  check "$fs: ... and the file system has room again ($(avail "$M") KiB free)" '[ "$(avail "$M")" -gt 16384 ]'
  ok "$fs: verify --full over the punched pack" vmcas -s "$S" verify --full
  ok "$fs: verify --reindex over the punched pack" vmcas -s "$S" verify --reindex
  vmcas -q -s "$S" checkout p --memory o.m --disk o.d
  check "$fs: reads back byte for byte after reindex" 'cmp -s o.m m.$good && cmp -s o.d d.$good'
  v=$((v + 1)); cp "m.$good" "m.$v"; cp "d.$good" "d.$v"
  img mutate "m.$v" "$v" 60; img mutate "d.$v" "$((v + 500))" 60
  ok "$fs: a checkin succeeds" vmcas -q -s "$S" checkin p --memory "m.$v" --disk "d.$v"
  good=$v
  out=$(vmcas -s "$S" gc --grace 0 --json)
  check "$fs: a later gc with room rewrites the punched pack" '[ "$(echo "$out" | json packs_rewritten)" -ge 1 ]'
  vmcas -q -s "$S" checkout p --memory o.m --disk o.d
  check "$fs: the latest version reads back byte for byte" 'cmp -s o.m m.$good && cmp -s o.d d.$good'
  ok "$fs: verify --full at the end" vmcas -s "$S" verify --full
  rm -f m.* d.* o.m o.d
}

# An LMDB environment with no free page: a compacting copy (mdb_env_copy2).
mdbcompact() {
  [ -x "$TMPDIR/mdbcompact" ] || cc -o "$TMPDIR/mdbcompact" -x c - -llmdb 2>/dev/null <<'EOF' || return 1
#include <lmdb.h>
int main(int argc, char **argv)
{
        MDB_env *e;
        if (argc != 3 || mdb_env_create(&e) || mdb_env_set_maxdbs(e, 16) || mdb_env_set_mapsize(e, 1ull << 40) ||
            mdb_env_open(e, argv[1], MDB_RDONLY, 0644) || mdb_env_copy2(e, argv[2], MDB_CP_COMPACT))
                return 1;
        mdb_env_close(e);
        return 0;
}
EOF
  rm -rf "$TMPDIR/mdbcopy"; mkdir "$TMPDIR/mdbcopy" && "$TMPDIR/mdbcompact" "$1" "$TMPDIR/mdbcopy" &&
    cp "$TMPDIR/mdbcopy/data.mdb" "$1/data.mdb"
}

reserve_round() {
  local fs=$1 M=$2 S=$2/store
  v=1 good=1 par=q
  vmcas -s "$S" init >/dev/null
  img random m.1 1048576 3; img random d.1 3145728 4
  vmcas -s "$S" parcel create q --policy ip --chunk-size 4K --compress none --memory-size 1048576 \
    --disk-size 3145728 >/dev/null
  vmcas -q -s "$S" checkin q --memory m.1 --disk d.1 >/dev/null
  fill "$M"
  vmcas -s "$S" prune q --keep 1 >/dev/null
  check "$fs: the first pack made STORE/reserve" '[ -f "$S/reserve" ]'
  if ! mdbcompact "$S/index"; then
    echo "# no C compiler or LMDB headers: the index cannot be compacted, round three skipped"
    return
  fi
  # Without the reserve: gc cannot commit, says so, and harms nothing.
  mv "$S/reserve" "$TMPDIR/reserve"
  dd if=/dev/zero of="$M/filler" bs=4k 2>/dev/null; sync
  fails "$fs: gc on a full disk without the reserve, the index without a free page" \
    "too full for gc to commit its work.*free a few MiB" vmcas -s "$S" gc --grace 0
  ok "$fs: ... leaves the store whole" vmcas -s "$S" verify --full
  vmcas -q -s "$S" checkout q --no-lease --memory o.m --disk o.d
  check "$fs: ... and the latest version reads back" 'cmp -s o.m m.$good && cmp -s o.d d.$good'
  # With it: the same gc succeeds.
  rm -f "$M/filler"; cp "$TMPDIR/reserve" "$S/reserve"; rm -f "$TMPDIR/reserve"
  mdbcompact "$S/index"
  dd if=/dev/zero of="$M/filler" bs=4k 2>/dev/null; sync
  check "$fs: the disk is full again ($(avail "$M") KiB free)" '[ "$(avail "$M")" -lt 64 ]'
  ok "$fs: gc with the reserve, the index without a free page" vmcas -q -s "$S" gc --grace 0
  check "$fs: ... frees the space ($(avail "$M") KiB free)" '[ "$(avail "$M")" -gt 16384 ]'
  check "$fs: ... and holds the reserve back again" '[ -f "$S/reserve" ]'
  ok "$fs: ... verify --full" vmcas -s "$S" verify --full
  v=$((v + 1)); cp "m.$good" "m.$v"; cp "d.$good" "d.$v"; img mutate "m.$v" "$v" 60
  ok "$fs: ... and a checkin succeeds" vmcas -q -s "$S" checkin q --memory "m.$v" --disk "d.$v"
  vmcas -q -s "$S" checkout q --memory o.m --disk o.d
  check "$fs: ... and reads back byte for byte" 'cmp -s o.m m.$v && cmp -s o.d d.$v'
  rm -f m.* d.* o.m o.d
  par=
}

ran=0
T=$TMPDIR/tmpfs; mkdir -p "$T"
if mount -t tmpfs -o size=40m vmcas-test "$T" 2>/dev/null; then
  mounts+=("$T"); run tmpfs "$T"; ran=1
else
  echo "# cannot mount a tmpfs: skipped"
fi
E=$TMPDIR/ext4; mkdir -p "$E"
if command -v mkfs.ext4 >/dev/null && truncate -s 48m "$TMPDIR/ext4.img" &&
   mkfs.ext4 -q -F "$TMPDIR/ext4.img" >/dev/null 2>&1 && mount -o loop "$TMPDIR/ext4.img" "$E" 2>/dev/null; then
  mounts+=("$E"); run ext4 "$E"; ran=1
else
  echo "# cannot mount an ext4 image on a loop device: skipped"
fi
R=$TMPDIR/tmpfs2; mkdir -p "$R"
if [ $ran = 1 ] && mount -t tmpfs -o size=40m vmcas-test "$R" 2>/dev/null; then
  mounts+=("$R"); reserve_round tmpfs "$R"
fi
[ $ran = 1 ] || skip_all "cannot mount a small file system here"
done_testing
