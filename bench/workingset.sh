#!/usr/bin/env bash
# Working-set benchmark (issue 8), against a real `vmcas serve` on
# 127.0.0.1. Host A checks out a parcel to a workspace and replays a
# "session": BENCH_READS scattered 4 KiB reads of its disk, in an order of
# their own; its workspace checkin keeps that read order with version 2.
# Hosts B and C (each a cold host cache) then check version 2 out to a
# workspace and replay the same session as soon as the disk is served: B
# with the working set fetched ahead in the background (the default), C
# without (VMCAS_NO_WORKING_SET=1, the baseline). Printed, from the disk
# server's log: the chunks each had to fetch on demand during the replay
# (a read that came before the background fetch had its chunk), read ahead
# and of the working set, and the time until the first N reads were
# served. Target: >= 90 % fewer demand misses with the working set.
set -eu
TOP=${TOP:-$(cd "$(dirname "$0")/.." && pwd)}
B=${VMCAS_BENCH:-$TOP/build/bench/vmcas}
[ -x "$B" ] || B=$TOP/build/vmcas
IMG=${TOP}/build/tools/vc-testimg
MB=${BENCH_MB:-256}
READS=${BENCH_READS:-2000}
W=$(mktemp -d "${BENCH_DIR:-/tmp}/vmcas-wsetbench.XXXXXX")
pids=()
export VMCAS_PASSPHRASE=bench
trap 'for p in "${pids[@]}"; do kill -9 $p 2>/dev/null || true; done; rm -rf "$W"' EXIT
cd "$W"
export VMCAS_KEYS=$W/keys VMCAS_HOST=bench
nbdsh() { PATH=/usr/bin:$PATH command nbdsh "$@"; }
"$B" -s st init >/dev/null
export VMCAS_TOKEN=$("$B" -s st user add bench | tail -1)
"$B" -s st serve --listen 127.0.0.1:0 2>serve.log & pids+=($!)
for _ in $(seq 300); do PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\) .*/\1/p' serve.log); [ -n "$PORT" ] && break; sleep 0.1; done
URL=http://127.0.0.1:$PORT
serve() { # DIR CACHE
  rm -f "$1/nbd.sock"
  VMCAS_CACHE=$2 "$B" workspace serve "$1" > /dev/null 2>"$1.log" & WS=$!; pids+=($WS)
  for _ in $(seq 300); do [ -S "$1/nbd.sock" ] && nbdsh -u "nbd+unix:///?socket=$1/nbd.sock" -c 'h.get_size()' >/dev/null 2>&1 && return 0; sleep 0.05; done
  return 1
}
unserve() { kill $WS; wait $WS 2>/dev/null || true; }
# replay DIR: the session's reads; prints the seconds to serve the first
# 10 %, 50 % and all of them
replay() {
  nbdsh -u "nbd+unix:///?socket=$1/nbd.sock" -c "
import time, random
n = h.get_size() // 4096
random.seed(7); idx = random.sample(range(n), $READS)
t0 = time.perf_counter(); marks = []
for k, i in enumerate(idx):
    h.pread(4096, i * 4096)
    if k + 1 in ($READS // 10, $READS // 2, $READS): marks.append(time.perf_counter() - t0)
print(' '.join('%.3f' % m for m in marks))
"
}
disk=$((MB * 1048576))
"$IMG" random d $disk 3; head -c 1048576 /dev/urandom > m
VMCAS_CACHE=$W/cA "$B" -q -s "$URL" parcel create ws --policy ip --chunk-size 4K --memory-size 1048576 --disk-size $disk >/dev/null
VMCAS_CACHE=$W/cA "$B" -q -s "$URL" checkin ws --memory m --disk d >/dev/null
VMCAS_CACHE=$W/cA "$B" -q -s "$URL" checkout ws --workspace wA >/dev/null
serve wA $W/cA; replay wA >/dev/null; unserve
VMCAS_CACHE=$W/cA "$B" -q workspace checkin wA --release >/dev/null
echo "working set: a session of $READS scattered 4 KiB reads of a $MB MiB disk, kept with version 2"
for host in B C; do
  if [ $host = B ]; then env=; what="with the working set"; else env=VMCAS_NO_WORKING_SET=1; what="without (baseline)"; fi
  t0=$(date +%s.%N)
  env $env VMCAS_CACHE=$W/c$host "$B" -q -s "$URL" checkout ws --no-lease --workspace w$host >/dev/null
  t1=$(date +%s.%N)
  # the replay starts as soon as the disk is served, as a resumed VM's
  # reads do: the working set is fetched in the background meanwhile
  serve w$host $W/c$host; marks=$(replay w$host); unserve
  # the disk server's log: "chunks fetched: N on demand, R read ahead, S of the working set, ..."
  demand=$(sed -n 's/.*chunks fetched: \([0-9]*\) on demand.*/\1/p' w$host.log | tail -1)
  ahead=$(sed -n 's/.*on demand, \([0-9]*\) read ahead.*/\1/p' w$host.log | tail -1)
  wset=$(sed -n 's/.*read ahead, \([0-9]*\) of the working set.*/\1/p' w$host.log | tail -1)
  eval "miss_$host=$demand"
  printf '  %-22s checkout %.2f s; during the replay, fetched on demand: %5d chunks, read ahead %5d, working set %5d; first 10%%/50%%/all reads served in %s s\n' \
    "$what" "$(awk -v a=$t0 -v b=$t1 'BEGIN{print b-a}')" "$demand" "$ahead" "$wset" "$(echo $marks | tr ' ' '/')"
done
awk -v b=$miss_B -v c=$miss_C 'BEGIN { r = c ? 1 - b / c : 0; printf "  demand misses cut by %.1f %% (target >= 90 %%: %s)\n", 100 * r, (r >= 0.9 ? "ok" : "BELOW") }'
