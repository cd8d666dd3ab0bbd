#!/usr/bin/env bash
# Every malformed manifest of shared/spec/analysis.md section 1, and bad
# options: vmcas analyze must fail with a message naming the line, leave an
# existing --json file exactly as it was and leave no temporary file behind.
. "$TOP/tests/lib.sh"
shopt -s lastpipe # "... | bad" runs bad in this shell, so its counts stay
cd "$TMPDIR" || exit 1

mkdir -p tr
mkimg tr/a1.mem 8192 a1; mkimg tr/a1.disk 12288 a1d
mkimg tr/a2.mem 8192 a2; mkimg tr/a2.disk 12288 a2d
mkimg tr/b.mem 8000 b;   mkimg tr/b.disk 12288 bd
mkdir -p tr/adir
chmod 000 tr/adir 2>/dev/null
H=$'parcel\tversion\ttimestamp\tmemory\tdisk'
row() { printf '%s\t%s\t%s\t%s\t%s\n' "$@"; }
echo keep > out.json
sum0=$(sha256sum out.json)

# bad NAME LINE PATTERN: the manifest is read from stdin.
bad() {
  local name=$1 line=$2 pat=$3
  cat > tr/manifest.tsv
  fails "$name" "manifest.tsv:$line: .*$pat" vmcas analyze tr --json out.json -q
  check "$name: output file untouched" '[ "$(sha256sum out.json)" = "$sum0" ]'
  check "$name: no temporary file" '[ -z "$(ls out.json.tmp.* 2>/dev/null)" ]'
}

bad "missing column" 1 "no 'disk' column" <<EOF
parcel	version	timestamp	memory
a	1	0	a1.mem
EOF
bad "column named twice" 2 "names column 'memory' twice" <<EOF
# comment first
parcel	version	timestamp	memory	disk	memory
EOF
for v in x 0 1.0 -1 +1 99999999999 ""; do
  { echo "$H"; row a "$v" 0 a1.mem a1.disk; } | bad "bad version '$v'" 2 "bad version"
done
for ts in 12a 1.5 +5 "" - 99999999999999999999 "1 2"; do
  { echo "$H"; row a 1 "$ts" a1.mem a1.disk; } | bad "bad timestamp '$ts'" 2 "bad timestamp"
done
{ echo "$H"; row a 1 0 a1.mem a1.disk; echo; row a 3 5 a2.mem a2.disk; } | bad "version gap" 4 "version gap.*version 3 follows version 1"
{ echo "$H"; row a 2 0 a1.mem a1.disk; } | bad "no version 1" 2 "has no version 1"
{ echo "$H"; row a 1 0 a1.mem a1.disk; row a 1 0 a2.mem a2.disk; } | bad "version twice" 3 "appears twice"
{ echo "$H"; row a 1 0 nope.mem a1.disk; } | bad "missing file" 2 "cannot open memory image 'nope.mem'"
{ echo "$H"; row a 1 0 a1.mem adir; } | bad "directory as image" 2 "disk image 'adir'"
{ echo "$H"; row a 1 0 a1.mem ""; } | bad "empty path" 2 "empty disk path"
if [ "$(id -u)" != 0 ]; then
  mkimg tr/locked 8192 l; chmod 000 tr/locked
  { echo "$H"; row a 1 0 locked a1.disk; } | bad "unreadable file" 2 "cannot open memory image 'locked'"
fi
{ echo "$H"; row a 1 0 a1.mem a1.disk; row a 2 9 b.mem a2.disk; } | bad "memory size change" 3 "size change: memory image.*8000 bytes"
{ echo "$H"; row a 1 0 a1.mem a1.disk; row a 2 9 a2.mem a1.mem; } | bad "disk size change" 3 "size change: disk image"
{ echo "$H"; row a 1 100 a1.mem a1.disk; row a 2 99 a2.mem a2.disk; } | bad "timestamp going back" 3 "timestamp goes back"
for p in "al ice" "a/b" "" "é"; do
  { echo "$H"; row "$p" 1 0 a1.mem a1.disk; } | bad "bad parcel name '$p'" 2 "bad parcel name"
done
{ echo "$H"; printf 'a\t1\t0\ta1.mem\n'; } | bad "too few fields" 2 "4 fields, but the header has 5"
{ echo "$H"; printf 'a\t1\t0\ta1.mem\ta1.disk\textra\n'; } | bad "too many fields" 2 "6 fields, but the header has 5"
{ echo "$H"; row a 1 0 a1.mem a1.disk; row a 2 $((100000 * 86400)) a2.mem a2.disk; } | bad "too many days" 3 "at most 99999 days"

# Errors without a line.
rm -f tr/manifest.tsv
fails "no manifest" "cannot read .*tr/manifest.tsv" vmcas analyze tr --json out.json -q
printf '# only a comment\n\n' > tr/manifest.tsv
fails "no header" "no header line" vmcas analyze tr --json out.json -q
echo "$H" > tr/manifest.tsv
fails "header only" "no versions" vmcas analyze tr --json out.json -q
printf 'parcel\0\n' > tr/manifest.tsv
fails "NUL byte" "NUL byte" vmcas analyze tr -q
check "output file untouched by the errors without a line" '[ "$(sha256sum out.json)" = "$sum0" ]'

# Bad options: exit status 2 and a usage message.
{ echo "$H"; row a 1 0 a1.mem a1.disk; row a 2 86400 a2.mem a2.disk; } > tr/manifest.tsv
usage() { local name=$1 pat=$2; shift 2; _n=$((_n+1)); local rc=0
  "$VMCAS" "$@" >last.out 2>&1 || rc=$?
  if [ $rc = 2 ] && grep -qE -- "$pat" last.out; then echo "ok $_n - usage: $name"
  else echo "not ok $_n - usage: $name (rc=$rc)"; sed 's/^/# /' last.out; _failed=1; fi; }
usage "chunk size not a power of two" "powers of two from 512 B to 64 MiB" analyze tr --chunk-sizes 4K,3000
usage "chunk size too small" "powers of two" analyze tr --chunk-sizes 256
usage "chunk size too large" "powers of two" analyze tr --chunk-sizes 128M
usage "chunk size not a size" "invalid chunk size" analyze tr --chunk-sizes 4Q
usage "unknown compression" "invalid compression 'lz4'" analyze tr --compress none,lz4
usage "zero threads" "invalid thread count" analyze tr --threads 0
usage "no trace" "missing TRACE" analyze
usage "two traces" "too many arguments" analyze tr tr
usage "unknown option" "Try 'vmcas analyze --help'" analyze tr --frobnicate
usage "synth bad size" "invalid disk size" synth x --disk-size 12X
usage "synth zero parcels" "invalid parcel count" synth x --parcels 0
usage "synth no outdir" "missing OUTDIR" synth

# A JSON file that cannot be written: failure, nothing left behind.
fails "unwritable json" "cannot write .*nodir/out.json" vmcas analyze tr -q --json nodir/out.json
check "no stray output" '[ ! -e nodir ]'
chmod 755 tr/adir 2>/dev/null
done_testing
