#!/usr/bin/env bash
# Every command's --json output validates against its schema in
# docs/schema/ (docs/json.md), errors under --json are JSON too, and every
# --help ends with a newline and exits 0.
. "$(dirname "$0")/../lib.sh"
/usr/bin/python3 -c 'import jsonschema' 2>/dev/null || skip_all "no python3-jsonschema"
. "$TOP/tests/server/server_lib.sh"
J="$TOP/tests/tools/json_check.py"
# is SCHEMA CMD...: the command exits 0 and its stdout fits the schema
is() { local sch=$1; shift; _n=$((_n+1)); local rc=0
  "$@" >"$TMPDIR/j.out" 2>"$TMPDIR/j.err" || rc=$?
  if [ $rc = 0 ] && /usr/bin/python3 "$J" "$sch" "$TMPDIR/j.out" >"$TMPDIR/j.why" 2>&1; then echo "ok $_n - $sch: $*"
  else echo "not ok $_n - $sch: $* (rc=$rc)"; sed 's/^/# /' "$TMPDIR/j.why" "$TMPDIR/j.err" | head -20; _failed=1; fi; }
# err STATUS CMD...: the command exits STATUS, prints a JSON error on stdout
# (and its usual line on stderr, the same message)
err() { local want=$1; shift; _n=$((_n+1)); local rc=0
  "$@" >"$TMPDIR/j.out" 2>"$TMPDIR/j.err" || rc=$?
  local first; first=$(head -1 "$TMPDIR/j.err" | sed 's/^vmcas[^:]*: //' | cut -c1-40)
  if [ $rc = "$want" ] && /usr/bin/python3 "$J" error "$TMPDIR/j.out" >"$TMPDIR/j.why" 2>&1 &&
     grep -q "\"exit_status\": $want" "$TMPDIR/j.out" && [ -n "$first" ] && grep -qF -- "$first" "$TMPDIR/j.out"; then
    echo "ok $_n - error $want: $*"
  else echo "not ok $_n - error $want: $* (rc=$rc)"; sed 's/^/# /' "$TMPDIR/j.why" "$TMPDIR/j.out" "$TMPDIR/j.err" | head -20; _failed=1; fi; }

S=$TMPDIR/st
mkimg m1 300000 a; mkimg d1 500000 b; mkimg m2 300000 c
is init vmcas -s "$S" init --json
is parcel-create vmcas -s "$S" parcel create a --policy ip --chunk-size 4K --memory-size 300000 --disk-size 500000 --json
is parcel-create vmcas -s "$S" parcel create g --policy group:staff --chunk-size 4K --memory-size 300000 --disk-size 500000 --json
is checkin vmcas -s "$S" checkin a --memory m1 --disk d1 --json
is checkin vmcas -s "$S" checkin a --memory m2 --disk d1 --json
is parcel-create vmcas -s "$S" parcel create c --policy all --from a@1 --json
is parcel-list vmcas -s "$S" parcel list --json
is checkout vmcas -s "$S" checkout a --memory o.mem --disk o.disk --json
is log vmcas -s "$S" log a --json
is log vmcas -s "$S" log g --json
is lease-show vmcas -s "$S" lease show a --json
is lease-break vmcas -s "$S" lease break a --json
is lease-show vmcas -s "$S" lease show a --json
is stat vmcas -s "$S" stat --json
is verify vmcas -s "$S" verify --json
is workspace-checkout vmcas -s "$S" checkout c --workspace ws --json
is workspace-status vmcas workspace status ws --json
is workspace-checkin vmcas workspace checkin ws --release --json
is verify vmcas -s "$S" verify --full --json
is prune vmcas -s "$S" prune a --keep 1 --json
is gc vmcas -s "$S" gc --grace 0 --json
is verify vmcas -s "$S" verify --reindex --json
is repair vmcas -s "$S" repair --json
is user-add vmcas -s "$S" user add root --admin --json
tok=$(grep -o '"token": "[0-9a-f]*"' "$TMPDIR/j.out" | grep -o '[0-9a-f]\{64\}')
is user-add vmcas -s "$S" user add bob --json
is user-list vmcas -s "$S" user list --json
is user-remove vmcas -s "$S" user remove bob --json

# a damaged store: verify --json still fits, says ok false, exits 1
cp -a "$S" "$TMPDIR/bad"
pack=$(find "$TMPDIR/bad/packs" -name '*.pack' | head -1)
printf 'XXXXXXXX' | dd of="$pack" bs=1 seek=200 conv=notrunc 2>/dev/null
_n=$((_n+1)); rc=0; vmcas -s "$TMPDIR/bad" verify --full --json >"$TMPDIR/v.out" 2>"$TMPDIR/v.err" || rc=$?
if [ $rc = 1 ] && /usr/bin/python3 "$J" verify "$TMPDIR/v.out" && grep -q '"ok": false' "$TMPDIR/v.out"; then
  echo "ok $_n - verify --json of a damaged store: ok false, exit 1"
else echo "not ok $_n - verify --json of a damaged store (rc=$rc)"; sed 's/^/# /' "$TMPDIR/v.out" "$TMPDIR/v.err" | head; _failed=1; fi

# over a server: the same schemas
start_server "$S" "$TMPDIR/server.log" || { echo "not ok - server did not start"; cat "$TMPDIR/server.log"; exit 1; }
export VMCAS_TOKEN=$tok
is parcel-list vmcas -s "$URL" --no-cache parcel list --json
is stat vmcas -s "$URL" --no-cache stat --json
is checkin vmcas -s "$URL" --no-cache checkin c --memory m2 --disk d1 --json
is log vmcas -s "$URL" --no-cache log c --json
is verify vmcas -s "$URL" --no-cache verify --json
is gc vmcas -s "$URL" --no-cache gc --json
VMCAS_PASSPHRASE=pw is login vmcas login "$URL" --push --json
stop_server
unset VMCAS_TOKEN

# errors under --json: on stdout, one object; stderr says the same
err 1 vmcas -s "$TMPDIR/nostore" stat --json
err 1 vmcas -s "$S" log nosuch --json
err 2 vmcas -s "$S" prune a --keep 0 --json
err 2 vmcas -s "$S" stat --bogus --json
err 2 vmcas -s "$S" checkin a --json
err 2 vmcas -s "$S" gc --json extra
err 1 vmcas -s "$S" init --json
err 2 vmcas -s "$S" lease frob a --json
err 2 vmcas -s "$S" user frob --json
err 1 vmcas -s "$S" checkout nosuch --memory x --disk y --json
# and without --json, text on stderr
fails "text error without --json" "does not exist" vmcas -s "$TMPDIR/nostore" stat

# every schema is documented in docs/json.md, field by field
for f in "$TOP"/docs/schema/*.schema.json; do
  n=$(basename "$f" .schema.json)
  check "docs/json.md names schema $n" "grep -q 'schema/$n.schema.json' '$TOP/docs/json.md'"
  for k in $(grep -o '"[a-z_]*": {' "$f" | grep -v '"properties"\|"definitions"\|"items"\|"error"' | sed 's/"\([a-z_]*\)".*/\1/' | sort -u); do
    grep -q "\`$k\`" "$TOP/docs/json.md" || { _n=$((_n+1)); echo "not ok $_n - field $k of $n not in docs/json.md"; _failed=1; }
  done
done

# every --help ends with a newline and exits 0
for c in "" init parcel checkin checkout log stat verify prune gc lease repair serve user login analyze synth resume suspend; do
  _n=$((_n+1)); rc=0
  vmcas $c --help >"$TMPDIR/h.out" 2>&1 || rc=$?
  if [ $rc = 0 ] && [ -s "$TMPDIR/h.out" ] && [ "$(tail -c 1 "$TMPDIR/h.out" | od -An -c | tr -d ' ')" = '\n' ]; then
    echo "ok $_n - vmcas $c --help ends with a newline"
  else echo "not ok $_n - vmcas $c --help (rc=$rc)"; _failed=1; fi
done
done_testing
