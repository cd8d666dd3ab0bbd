#!/usr/bin/env bash
# Crash safety: kill -9 at random moments of checkin, prune and gc. After
# each kill the store opens, verify --full passes, and every version that a
# checkin reported committed checks out byte for byte.
. "$TOP/tests/lib.sh"
S=$TMPDIR/store
B=${VMCAS_PLAIN:-$VMCAS}   # the optimised binary: more kills land mid-write
ROUNDS=${CRASH_ROUNDS:-24}
RANDOM=4242
"$B" -s "$S" init >/dev/null
for pol in all delta; do
  "$B" -s "$S" parcel create $pol --policy $pol --chunk-size 4K --compress zstd --memory-size 6M --disk-size 18M >/dev/null
done
img new m0 6291456 1; img new d0 18874368 2
# kills land anywhere in a checkin: at random moments up to twice what
# one takes on this machine now (so a loaded machine still sees some
# checkins finish)
"$B" -s "$S" parcel create probe --policy ip --chunk-size 4K --memory-size 6M --disk-size 18M >/dev/null
t0=$(date +%s%N); "$B" -q -s "$S" checkin probe --memory m0 --disk d0 >/dev/null; t1=$(date +%s%N)
span=$(( (t1 - t0) / 1000000 * 2 )); [ $span -lt 350 ] && span=350
echo "# one checkin takes $(( (t1 - t0) / 1000000 )) ms: kills within $span ms"
declare -A committed      # "parcel:version" -> image pair checksum
sum() { cat "$1" "$2" | sha256sum | cut -c1-64; }
# each parcel starts with one version nobody kills, so the rounds below
# always have a latest version to keep safe, however the kills land
for pol in all delta; do
  "$B" -q -s "$S" checkin $pol --memory m0 --disk d0 >/dev/null
  committed[$pol:0]=$(sum m0 d0)
done
bad=0
for r in $(seq 1 "$ROUNDS"); do
  pol=$([ $((r % 2)) = 0 ] && echo all || echo delta)
  cp m0 m$r; cp d0 d$r; img mutate m$r $((r * 7)) 30; img mutate d$r $((r * 7 + 1)) 10
  what=$((RANDOM % 4))
  case $what in
    0|1) "$B" -q -s "$S" checkin $pol --memory m$r --disk d$r --json > out.$r 2>err.$r & ;;
    2)   "$B" -q -s "$S" prune $pol --keep 3 > out.$r 2>err.$r & ;;
    3)   "$B" -q -s "$S" gc --grace 0 > out.$r 2>err.$r & ;;
  esac
  pid=$!
  ms=$(( (RANDOM * 32768 + RANDOM) % span ))
  sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
  kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
  if [ $what -le 1 ] && grep -q '"version"' out.$r; then
    v=$(json version < out.$r); committed[$pol:$v]=$(sum m$r d$r)
  fi
  if ! "$B" -s "$S" verify --full > verify.$r 2>&1; then
    echo "# round $r (action $what): verify failed"; sed 's/^/# /' verify.$r | head; bad=1
  fi
  [ $r -gt 1 ] && rm -f m$((r - 1)) d$((r - 1))
done
check "verify --full passed after each of $ROUNDS kills" '[ $bad = 0 ]'
# every reported version that prune did not drop on purpose is intact
lost=0 n=0
for k in ${committed[@]+"${!committed[@]}"}; do
  pol=${k%%:*}; v=${k#*:}
  if "$B" -s "$S" log $pol --json | grep -q "\"version\": $v,"; then
    n=$((n + 1))
    "$B" -q -s "$S" checkout $pol --version $v --memory o.m --disk o.d && [ "$(sum o.m o.d)" = "${committed[$k]}" ] || { echo "# $k lost"; lost=1; }
  fi
done
echo "# $n committed versions checked, ${#committed[@]} reported"
check "every committed version checks out byte for byte" '[ $lost = 0 ] && [ $n -gt 0 ]'
# the latest version of each parcel is never dropped by prune
for pol in all delta; do
  latest=$("$B" -s "$S" log $pol --json | json latest_version)
  ok "latest version ($latest) of $pol checks out" "$B" -q -s "$S" checkout $pol --memory o.m --disk o.d
done
# after all the kills, a gc with no grace leaves a clean store
ok "gc after the crashes" "$B" -q -s "$S" gc --grace 0
ok "verify --full after gc" "$B" -s "$S" verify --full
done_testing
