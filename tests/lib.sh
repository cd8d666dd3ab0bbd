# Shared helpers for the shell tests (source it). Prints TAP lines that
# tests/run.sh counts. $VMCAS is the binary under test.
set -u
_n=0 _failed=0
: "${VMCAS:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build/asan/vmcas}"
export VMCAS_KEYS="${TMPDIR:-/tmp}/keys"

# ok NAME CMD...: passes when CMD exits 0.
ok() { local name=$1; shift; _n=$((_n+1))
  if "$@" >"${TMPDIR:-/tmp}/last.out" 2>&1; then echo "ok $_n - $name"
  else echo "not ok $_n - $name"; sed 's/^/# /' "${TMPDIR:-/tmp}/last.out" | head -20; _failed=1; fi; }
# fails NAME PATTERN CMD...: passes when CMD exits non-zero (not by a
# sanitizer or signal) and its stderr matches PATTERN (grep -E).
fails() { local name=$1 pat=$2; shift 2; _n=$((_n+1)); local rc=0
  "$@" >"${TMPDIR:-/tmp}/last.out" 2>&1 || rc=$?
  if [ $rc -ne 0 ] && [ $rc -lt 64 ] && grep -qE -- "$pat" "${TMPDIR:-/tmp}/last.out"; then echo "ok $_n - $name"
  else echo "not ok $_n - $name (rc=$rc, wanted /$pat/)"; sed 's/^/# /' "${TMPDIR:-/tmp}/last.out" | head -20; _failed=1; fi; }
# check NAME: records the outcome of the previous command's test "[ ... ]".
check() { local name=$1; shift; _n=$((_n+1))
  if eval "$@"; then echo "ok $_n - $name"; else echo "not ok $_n - $name: $*"; _failed=1; fi; }
skip_all() { echo "1..0 # SKIP $*"; exit 77; }
done_testing() { echo "1..$_n"; exit $_failed; }
vmcas() { "$VMCAS" "$@"; }
# mkimg FILE SIZE SEED: deterministic pseudo-random file.
mkimg() { head -c "$2" < <(openssl enc -aes-128-ctr -nosalt -pass "pass:$3" -in /dev/zero 2>/dev/null) > "$1"; }
: "${TOP:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
TESTIMG="$TOP/build/tools/vc-testimg"
img() { "$TESTIMG" "$@"; }
# snapshot DIR: a digest of every file of a store but LMDB's lock file and
# the lock files, to show that a failed command changed nothing.
snapshot() { (cd "$1" && find . -type f ! -name lock.mdb ! -path './locks/*' -print0 | sort -z | xargs -0 sha256sum | sha256sum); }
# json FIELD: reads one top-level integer field of a JSON object on stdin.
json() { grep -o "\"$1\": *-\?[0-9]*" | head -1 | sed 's/.*: *//'; }
