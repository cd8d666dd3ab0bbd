#!/usr/bin/env bash
# RADOS benchmark of issue 10, over a one-node Ceph cluster (one ceph-mon,
# one ceph-osd on memstore, on 127.0.0.1: tests/rados/ceph_lib.sh) started
# here. Checkin of new data and checkout into empty host caches:
#  - the local back end, one client (the baseline)
#  - the RADOS back end used directly, one client
#  - 4 clients at once spread over 1, 2 and 4 `vmcas serve` on the cluster
# Figures are MB/s of image bytes (all clients together), and ratios to
# the local back end and to one server, measured in this run. All of it
# shares this machine's cores with the cluster, so the ratios say what the
# code costs here, not what a cluster of real hosts would give.
# BENCH_MB sizes each client's images (default 64).
set -eu
B=${VMCAS_BENCH:?run through make bench}
IMG=${TOP}/build/tools/vc-testimg
MB=${BENCH_MB:-64}
command -v ceph-mon >/dev/null || { echo "skipped: ceph-mon and ceph-osd are not installed"; exit 0; }
W=$(mktemp -d "${BENCH_DIR:-/tmp}/vmcas-bench-rados.XXXXXX")
export TMPDIR=$W CEPH_MEMSTORE_BYTES=$(( (MB * 20 + 512) * 1048576 ))
. "$TOP/tests/rados/ceph_lib.sh"
pids=()
cleanup_servers() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; }
cleanup() { _ceph_exit; rm -rf "$W"; }
ceph_start vmcas >/dev/null || { echo "the cluster did not start"; exit 1; }
trap cleanup EXIT
export VMCAS_KEYS=$W/keys VMCAS_HOST=bench
now() { date +%s.%N; }
rate() { awk -v b="$1" -v a="$2" -v c="$3" 'BEGIN { printf "%.1f", b / (c - a) / 1e6 }'; }
ratio() { awk -v x="$1" -v y="$2" 'BEGIN { printf "%.2f", x / y }'; }
serve() {
  local log=$W/serve.$1.log
  "$B" -s "$S" serve --listen 127.0.0.1:0 --users "$W/users" 2>"$log" & pids+=($!)
  for _ in $(seq 300); do
    PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$log"); [ -n "$PORT" ] && return 0
    sleep 0.1
  done
  echo "server did not start"; cat "$log"; exit 1
}
mem=$((MB / 8 * 1048576)); disk=$((MB * 1048576 - mem)); bytes=$((mem + disk))
for c in 1 2 3 4; do "$IMG" random "$W/m$c" $mem $c; "$IMG" random "$W/d$c" $disk $((c + 10)); done
mk() { "$B" -q -s "$1" parcel create "$2" --policy delta --chunk-size 64K --compress none --memory-size $mem --disk-size $disk >/dev/null 2>&1; }

# one client, local and RADOS directly
one() {   # STORE: sets ci, co (MB/s)
  mk "$1" p1
  local t0 t1 t2
  t0=$(now); "$B" -q -s "$1" checkin p1 --memory "$W/m1" --disk "$W/d1" >/dev/null; t1=$(now)
  "$B" -q -s "$1" checkout p1 --no-lease --memory "$W/o.m" --disk "$W/o.d"; t2=$(now)
  cmp -s "$W/o.m" "$W/m1" && cmp -s "$W/o.d" "$W/d1" || { echo "checkout differs!"; exit 1; }
  rm -f "$W/o.m" "$W/o.d"
  ci=$(rate $bytes $t0 $t1) co=$(rate $bytes $t1 $t2)
}
"$B" -s "$W/local" init >/dev/null
one "$W/local"; lci=$ci lco=$co
S="rados://vmcas/direct?conf=$CEPH_CONF"
"$B" -s "$S" init >/dev/null
one "$S"; dci=$ci dco=$co
printf "%-34s %10s %10s %12s %12s\n" "" "checkin" "checkout" "ci vs local" "co vs local"
printf "%-34s %7s MB/s %5s MB/s %12s %12s\n" "local back end, 1 client" $lci $lco 1.00 1.00
printf "%-34s %7s MB/s %5s MB/s %12s %12s\n" "RADOS directly, 1 client" $dci $dco $(ratio $dci $lci) $(ratio $dco $lco)

# 4 clients over N servers
for n in 1 2 4; do
  S="rados://vmcas/srv$n?conf=$CEPH_CONF"
  "$B" -s "$S" init >/dev/null
  rm -f "$W/users"; export VMCAS_TOKEN=$("$B" -s "$S" user add bench --users "$W/users" | tail -1)
  urls=()
  for i in $(seq 1 $n); do serve $i; urls+=("http://127.0.0.1:$PORT"); done
  for c in 1 2 3 4; do mk "${urls[$(( (c - 1) % n ))]}" "c$c"; done
  t0=$(now); bg=()
  for c in 1 2 3 4; do
    "$B" -q -s "${urls[$(( (c - 1) % n ))]}" --cache "$W/ci$n.$c" checkin c$c --memory "$W/m$c" --disk "$W/d$c" >/dev/null 2>&1 & bg+=($!)
  done
  wait "${bg[@]}"; t1=$(now); bg=()
  for c in 1 2 3 4; do
    "$B" -q -s "${urls[$(( c % n ))]}" --cache "$W/co$n.$c" checkout c$c --no-lease --memory "$W/o.m$c" --disk "$W/o.d$c" >/dev/null 2>&1 & bg+=($!)
  done
  wait "${bg[@]}"; t2=$(now)
  for c in 1 2 3 4; do cmp -s "$W/o.m$c" "$W/m$c" && cmp -s "$W/o.d$c" "$W/d$c" || { echo "checkout differs!"; exit 1; }; done
  rm -rf "$W"/o.* "$W"/ci$n.* "$W"/co$n.*
  ci=$(rate $((4 * bytes)) $t0 $t1) co=$(rate $((4 * bytes)) $t1 $t2)
  [ $n = 1 ] && sci=$ci sco=$co
  printf "%-34s %7s MB/s %5s MB/s %12s %12s   (vs 1 server: %s, %s)\n" "4 clients over $n server(s)" $ci $co \
    $(ratio $ci $lci) $(ratio $co $lco) $(ratio $ci $sci) $(ratio $co $sco)
  cleanup_servers; for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done; pids=()
done
