#!/usr/bin/env bash
# Network benchmark of issue 7.
#  1. Over loopback: checkin of new data and checkout into an empty host
#     cache through `vmcas serve`, against the local store on the same
#     images (the ratio is the figure; target >= 0.7 of local).
#  2. The study's telecommuting case: a shaped link of 10 Mbit/s and 20 ms
#     each way (bench/linkemu.py, in a network namespace made here; this
#     kernel has no netem), the wall time of a day's checkin and checkout
#     per policy and chunk size, beside the bytes `vmcas analyze` predicts.
#  3. The cost of --no-existence-oracle in upload bytes, on the same trace.
# BENCH_MB sizes part 1 (default 512).
set -eu
B=${VMCAS_BENCH:?run through make bench}
IMG=${TOP}/build/tools/vc-testimg
MB=${BENCH_MB:-512}
W=$(mktemp -d "${BENCH_DIR:-/tmp}/vmcas-bench-net.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
export VMCAS_KEYS=$W/keys VMCAS_HOST=bench
PY=/usr/bin/python3
jget() { $PY -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
rate() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / s / 1e6 }'; }

# serve STORE LOG [ARGS]: starts a server on a free port of 127.0.0.1, sets PORT
serve() {
  local st=$1 log=$2; shift 2
  "$B" -s "$st" serve --listen 127.0.0.1:0 "$@" 2>"$log" & pids+=($!)
  for _ in $(seq 300); do
    PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$log"); [ -n "$PORT" ] && return 0
    sleep 0.1
  done
  echo "server did not start"; cat "$log"; exit 1
}

# ---- 1. loopback --------------------------------------------------------------------
mem=$((MB / 8 * 1048576)); disk=$((MB * 1048576 - mem))
"$IMG" random "$W/m" $mem 1; "$IMG" random "$W/d" $disk 2
cat "$W/m" "$W/d" > /dev/null
"$B" -s "$W/local" init >/dev/null
"$B" -s "$W/local" parcel create p --policy all --chunk-size 4K --compress none --memory-size $mem --disk-size $disk >/dev/null
"$B" -s "$W/srv" init >/dev/null
export VMCAS_TOKEN=$("$B" -s "$W/srv" user add bench | tail -1)
serve "$W/srv" "$W/srv.log"
URL=http://127.0.0.1:$PORT
"$B" -q -s "$URL" parcel create p --policy all --chunk-size 4K --compress none --memory-size $mem --disk-size $disk 2>/dev/null >/dev/null
SPID=${pids[-1]}
# CPU seconds of a command (user + system), and of the server meanwhile
cpu_of() { /usr/bin/time -f "%U %S" -o "$W/cpu" "$@" > /dev/null; awk '{ printf "%.2f", $1 + $2 }' "$W/cpu"; }
srv_cpu() { awk -v hz=$(getconf CLK_TCK) '{ printf "%.2f", ($14 + $15) / hz }' /proc/$SPID/stat; }
# each timed step starts on a quiet disk: sync writes back what the one
# before left dirty (else its writeback lands in the next step's time)
sync; t0=$(now); lcc=$(cpu_of "$B" -q -s "$W/local" checkin p --memory "$W/m" --disk "$W/d"); t1=$(now)
sync; s0=$(srv_cpu); t2=$(now); rcc=$(cpu_of "$B" -q -s "$URL" --cache "$W/cache1" checkin p --memory "$W/m" --disk "$W/d" --json); t3=$(now); s1=$(srv_cpu)
lc=$(secs $t0 $t1) rc=$(secs $t2 $t3)
sync; t0=$(now); lco=$(cpu_of "$B" -q -s "$W/local" checkout p --no-lease --memory "$W/o.m" --disk "$W/o.d"); t1=$(now)
rm -f "$W/o.m" "$W/o.d"
sync; s2=$(srv_cpu); t2=$(now); rco=$(cpu_of "$B" -q -s "$URL" --cache "$W/cache2" checkout p --no-lease --memory "$W/o.m" --disk "$W/o.d" --json); t3=$(now); s3=$(srv_cpu)
cmp -s "$W/o.m" "$W/m" && cmp -s "$W/o.d" "$W/d" || { echo "checkout differs!"; exit 1; }
lo=$(secs $t0 $t1) ro=$(secs $t2 $t3)
tot=$((mem + disk))
pr() { printf '%-58s %6s MB/s  local %6s MB/s  ratio %.2f  target >= 0.70  %s\n' "$1" "$(rate $tot $2)" "$(rate $tot $3)" \
       "$(awk -v a="$3" -v b="$2" 'BEGIN { print a / b }')" "$(awk -v a="$3" -v b="$2" 'BEGIN { print (a / b >= 0.7 ? "ok" : "BELOW") }')"; }
pr "loopback: checkin of new data (all, 4K), $MB MiB" $rc $lc
pr "loopback: checkout into an empty host cache" $ro $lo
echo "  CPU seconds (user + system): checkin local $lcc; remote client $rcc + server $(awk -v a=$s0 -v b=$s1 'BEGIN { printf "%.2f", b - a }')"
echo "                               checkout local $lco; remote client $rco + server $(awk -v a=$s2 -v b=$s3 'BEGIN { printf "%.2f", b - a }')"
echo "  (client and server share this machine's cores: the server's re-hash of every upload is CPU the local store does not spend)"
rm -rf "$W/cache1" "$W/cache2" "$W/o.m" "$W/o.d" "$W/m" "$W/d" "$W/local"

# ---- 2. the shaped link -----------------------------------------------------------------
"$B" synth -q "$W/tr" --parcels 2 --versions 2 --memory-size 8M --disk-size 24M --days 4 >/dev/null
"$B" analyze -q "$W/tr" --chunk-sizes 4K,128K --compress none --json "$W/an.json" >/dev/null
grep -v '^#' "$W/tr/manifest.tsv" | tail -n +2 | sort -t$'\t' -k3,3n -k1,1 -k2,2n > "$W/events.tsv"
cat > "$W/shaped.sh" <<'SH'
# runs inside the namespace: a server, the link in front of it, the events
set -eu
ip link set lo up
B=$1 W=$2 PY=$3 TOP=$4
serve() { local st=$1 log=$2; shift 2
  "$B" -s "$st" serve --listen 127.0.0.1:0 "$@" 2>"$log" & echo $! >> "$W/ns.pids"
  for _ in $(seq 300); do PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$log"); [ -n "$PORT" ] && return 0; sleep 0.1; done
  exit 1; }
now() { date +%s.%N; }
for cs in 4K 128K; do for pol in delta ip all; do
  st=$W/sh-$pol-$cs; "$B" -s "$st" init >/dev/null
  export VMCAS_TOKEN=$("$B" -s "$st" user add u | tail -1)
  serve "$st" "$st.log"
  LPORT=$((20000 + RANDOM % 20000))
  $PY "$TOP/bench/linkemu.py" $LPORT $PORT 10 20 > "$st.link" 2>&1 & echo $! >> "$W/ns.pids"
  for _ in $(seq 100); do grep -q ready "$st.link" && break; sleep 0.1; done
  URL=http://127.0.0.1:$LPORT
  while IFS=$'\t' read -r parcel version ts mem disk; do
    name=$parcel
    if [ "$version" = 1 ]; then
      # version 1 (the gold image) goes in straight to the server: not timed
      "$B" -q -s "http://127.0.0.1:$PORT" parcel create $name --policy $pol --chunk-size $cs --compress none \
        --memory-size $(stat -c %s "$W/tr/$mem") --disk-size $(stat -c %s "$W/tr/$disk") >/dev/null 2>&1
      "$B" -q -s "http://127.0.0.1:$PORT" --cache "$W/c-$pol-$cs-$parcel" checkin $name --memory "$W/tr/$mem" --disk "$W/tr/$disk" >/dev/null 2>&1
      continue
    fi
    t0=$(now); "$B" -q -s "$URL" --cache "$W/up-$pol-$cs-$parcel" checkin $name --memory "$W/tr/$mem" --disk "$W/tr/$disk" --json > "$W/ci.json" 2>/dev/null; t1=$(now)
    # the other host has version k-1 in its cache
    rm -rf "$W/down"; "$B" -q -s "http://127.0.0.1:$PORT" --cache "$W/down" checkout $name --version $((version - 1)) --no-lease --memory "$W/o.m" --disk "$W/o.d"
    t2=$(now); "$B" -q -s "$URL" --cache "$W/down" checkout $name --no-lease --memory "$W/o.m" --disk "$W/o.d" --json > "$W/co.json"; t3=$(now)
    echo "$pol $cs $parcel $version $(awk -v a=$t0 -v b=$t1 'BEGIN{print b-a}') $(awk -v a=$t2 -v b=$t3 'BEGIN{print b-a}') $(grep -o '"sent_data_bytes": *[0-9]*' "$W/ci.json" | grep -o '[0-9]*$') $(grep -o '"received_data_bytes": *[0-9]*' "$W/co.json" | grep -o '[0-9]*$') $(grep -o '"wire_bytes": *[0-9]*' "$W/ci.json" | grep -o '[0-9]*$') $(grep -o '"wire_bytes": *[0-9]*' "$W/co.json" | grep -o '[0-9]*$')" >> "$W/shaped.out"
  done < "$W/events.tsv"
done; done
SH
: > "$W/shaped.out"; : > "$W/ns.pids"
NS=vmcas-bench-$$
if ip netns add $NS 2>/dev/null; then
  ip netns exec $NS bash "$W/shaped.sh" "$B" "$W" "$PY" "$TOP" || echo "shaped run failed"
  for p in $(cat "$W/ns.pids"); do kill $p 2>/dev/null || true; done
  sleep 0.5; ip netns del $NS
  where="in network namespace $NS"
else
  bash "$W/shaped.sh" "$B" "$W" "$PY" "$TOP" || echo "shaped run failed"
  for p in $(cat "$W/ns.pids"); do kill $p 2>/dev/null || true; done
  where="on this host's loopback (no network namespace could be made)"
fi
echo "telecommuting: a 10 Mbit/s link, 20 ms each way, $where; a day's session = checkin of version k, checkout of it on a host that has k-1"
$PY - "$W/shaped.out" "$W/an.json" <<'PYEOF'
import json, sys
an = json.load(open(sys.argv[2]))
up = {(u["policy"], u["chunk_size"], u["parcel"], u["version"]): u["data_bytes"] + u["meta_bytes"] for u in an["upload"] if u["compression"] == "none"}
down = {(d["chunk_size"], d["parcel"], d["version"], d["method"]): d["bytes"] for d in an["download"]
        if d["compression"] == "none" and d["mode"] == "complete"}
print("%-6s %5s %-12s %8s %11s %11s %8s %11s %11s" % ("policy", "chunk", "event", "checkin", "sent data", "predicted",
      "checkout", "recv data", "predicted"))
for line in open(sys.argv[1]):
    pol, cs, p, v, tci, tco, sent, recv, wci, wco = line.split()
    c = 4096 if cs == "4K" else 131072
    pu = up.get((pol, c, p, int(v)), 0)
    method = "delta" if pol == "delta" else "cas"
    pd = down.get((c, p, int(v), method), 0)
    print("%-6s %5s %-12s %7.2fs %11s %11d %7.2fs %11s %11d" % (pol, cs, "%s@%s" % (p, v), float(tci), sent, pu, float(tco), recv, pd))
print("(predicted: vmcas analyze, data + flat keyring for uploads, complete fetch for downloads; vmcas sends keyrings as trees)")
PYEOF

# ---- 3. the existence oracle's cost -------------------------------------------------------
for o in on off; do
  st=$W/or-$o; "$B" -s "$st" init >/dev/null
  export VMCAS_TOKEN=$("$B" -s "$st" user add u | tail -1)
  serve "$st" "$st.log" $([ $o = off ] && echo --no-existence-oracle)
  sent=0
  while IFS=$'\t' read -r parcel version ts mem disk; do
    if [ "$version" = 1 ]; then
      "$B" -q -s "http://127.0.0.1:$PORT" parcel create $parcel --policy all --chunk-size 4K --compress none \
        --memory-size $(stat -c %s "$W/tr/$mem") --disk-size $(stat -c %s "$W/tr/$disk") >/dev/null 2>&1
    fi
    "$B" -q -s "http://127.0.0.1:$PORT" --no-cache checkin $parcel --memory "$W/tr/$mem" --disk "$W/tr/$disk" --json > "$W/ci.json"
    sent=$((sent + $(jget "$W/ci.json" sent_data_bytes)))
  done < "$W/events.tsv"
  eval sent_$o=$sent
done
echo "existence oracle (all, 4K, every version of the trace): $sent_on bytes of data uploaded with it, $sent_off with --no-existence-oracle: $(awk -v a=$sent_off -v b=$sent_on 'BEGIN { printf "%.2f", a / b }') x"
