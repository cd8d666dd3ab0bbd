#!/usr/bin/env bash
# Workspace benchmark, against a real `vmcas serve` on 127.0.0.1:
#  1. latency of a read of one missing 4 KiB chunk through nbdkit (median,
#     p99; targets 250 us / 1 ms), chunks far apart so that none came along
#     with another's read-ahead: with the server's packs in its page cache
#     (the target), and on its disk as written, beside a direct read of
#     that disk and a read served by the host cache;
#  2. sequential read (nbdcopy to /dev/null) of a disk fully in the host
#     cache (target >= 500 MB/s), and of a disk not cached at all, against
#     a checkout of the same disk with --fetch complete (the baseline);
#  3. workspace checkin of an 8 GiB disk (128 KiB chunks) with 1 % of its
#     chunks dirty (target < 2 s).
# BENCH_MB: the disk of 1 and 2 (default 256); BENCH_CHECKIN_GB (default 8).
set -eu
TOP=${TOP:-$(cd "$(dirname "$0")/.." && pwd)}
B=${VMCAS_BENCH:-$TOP/build/vmcas}
[ -x "$B" ] || B=$TOP/build/vmcas
IMG=${TOP}/build/tools/vc-testimg
MB=${BENCH_MB:-256}
GB=${BENCH_CHECKIN_GB:-8}
W=$(mktemp -d "${BENCH_DIR:-/tmp}/vmcas-wsbench.XXXXXX")
pids=()
export VMCAS_PASSPHRASE=bench
trap 'for p in "${pids[@]}"; do kill -9 $p 2>/dev/null || true; done; rm -rf "$W"' EXIT
cd "$W"
export VMCAS_KEYS=$W/keys VMCAS_HOST=bench
nbdsh() { PATH=/usr/bin:$PATH command nbdsh "$@"; }
nbdcopy() { PATH=/usr/bin:$PATH command nbdcopy "$@"; }
"$B" -s st init >/dev/null
export VMCAS_TOKEN=$("$B" -s st user add bench | tail -1)
"$B" -s st serve --listen 127.0.0.1:0 2>serve.log & pids+=($!)
for _ in $(seq 300); do PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\) .*/\1/p' serve.log); [ -n "$PORT" ] && break; sleep 0.1; done
URL=http://127.0.0.1:$PORT
serve() { # DIR CACHE: serves DIR, waits for it
  rm -f "$1/nbd.sock"
  VMCAS_CACHE=$2 "$B" workspace serve "$1" > /dev/null 2>"$1.log" & WS=$!; pids+=($WS)
  for _ in $(seq 300); do [ -S "$1/nbd.sock" ] && nbdsh -u "nbd+unix:///?socket=$1/nbd.sock" -c 'h.get_size()' >/dev/null 2>&1 && return 0; sleep 0.05; done
  return 1
}
unserve() { kill $WS; wait $WS 2>/dev/null || true; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
now() { date +%s.%N; }

# ---- 1 and 2: a disk of MB MiB, 4 KiB chunks
disk=$((MB * 1048576))
"$IMG" random d $disk 2; head -c 1048576 /dev/urandom > m
VMCAS_CACHE=$W/c0 "$B" -q -s "$URL" parcel create lat --policy all --chunk-size 4K --memory-size 1048576 --disk-size $disk >/dev/null
VMCAS_CACHE=$W/c0 "$B" -q -s "$URL" checkin lat --memory m --disk d >/dev/null
VMCAS_CACHE=$W/c1 "$B" -q -s "$URL" checkout lat --no-lease --workspace ws1 >/dev/null
serve ws1 $W/c1
# the server's packs, written with direct I/O: on its disk, not in its page cache
PACKS=$(find st/packs -name '*.pack' | tr '\n' ' ')
nbdsh -u "nbd+unix:///?socket=ws1/nbd.sock" -c "
import time, random, os, mmap
def stats(t):
    t = sorted(t)
    return t[len(t) // 2] * 1e6, t[int(len(t) * 0.99)] * 1e6
def reads(idx):
    t = []
    for i in idx:
        a = time.perf_counter(); h.pread(4096, i * 4096); t.append(time.perf_counter() - a)
    return t
n = h.get_size() // 4096
random.seed(1)
cold = list(range(0, n, 256)); random.shuffle(cold); cold = cold[:400]
warm = [i + 128 for i in cold]
# baseline: the server's disk, a direct 4 KiB read at a random offset of its packs
packs = '$PACKS'.split()
disk = []
try:
    buf = mmap.mmap(-1, 4096)
    for k in range(400):
        p = packs[k % len(packs)]
        fd = os.open(p, os.O_RDONLY | os.O_DIRECT)
        off = random.randrange(0, max(os.fstat(fd).st_size // 4096, 1)) * 4096
        a = time.perf_counter(); os.preadv(fd, [buf], off); disk.append(time.perf_counter() - a)
        os.close(fd)
except OSError:
    disk = []
c = reads(cold)
hit = reads(cold)           # the same chunks again: from the host cache
for p in packs:             # the server's packs into its page cache
    with open(p, 'rb') as f:
        while f.read(1 << 20):
            pass
w = reads(warm)
wm, wp = stats(w); cm, cp = stats(c); hm, hp = stats(hit)
print('1. missing 4 KiB chunk through nbdkit, %d reads: median %.0f us (target <= 250: %s), p99 %.0f us (target <= 1000: %s), the server\'s packs in its page cache' % (
    len(w), wm, 'ok' if wm <= 250 else 'ABOVE', wp, 'ok' if wp <= 1000 else 'ABOVE'))
print('   the server\'s packs on its disk (as written): median %.0f us, p99 %.0f us; that disk alone, a direct 4 KiB read at random: %s' % (
    cm, cp, ('median %.0f us, p99 %.0f us' % stats(disk)) if disk else 'not measured (no direct I/O here)'))
print('   baseline, the same chunks again from the host cache: median %.0f us, p99 %.0f us' % (hm, hp))
"
unserve
# ---- 2: sequential reads of a disk of MB MiB with the default 128 KiB chunks
VMCAS_CACHE=$W/c0 "$B" -q -s "$URL" parcel create seq --policy all --memory-size 1048576 --disk-size $disk >/dev/null
VMCAS_CACHE=$W/c0 "$B" -q -s "$URL" checkin seq --memory m --disk d >/dev/null
VMCAS_CACHE=$W/c2 "$B" -q -s "$URL" checkout seq --no-lease --workspace ws2 >/dev/null
serve ws2 $W/c2
a=$(now); nbdcopy "nbd+unix:///?socket=ws2/nbd.sock" null:; b=$(now); unc=$(secs $a $b)
unserve
a=$(now); VMCAS_CACHE=$W/c3 "$B" -q -s "$URL" checkout seq --no-lease --workspace ws3 --fetch complete >/dev/null; b=$(now); comp=$(secs $a $b)
serve ws3 $W/c3
a=$(now); nbdcopy "nbd+unix:///?socket=ws3/nbd.sock" null:; b=$(now); cached=$(secs $a $b)
unserve
awk -v s=$disk -v c=$cached -v u=$unc -v f=$comp 'BEGIN {
  r = s / c / 1e6
  printf "2. sequential read through nbdkit (nbdcopy, %d MiB, 128 KiB chunks): cached %.0f MB/s (target >= 500: %s)\n", s / 1048576, r, (r >= 500 ? "ok" : "BELOW")
  printf "   not cached: %.2f s (%.0f MB/s) vs checkout --fetch complete %.2f s: ratio %.2f\n", u, s / u / 1e6, f, u / f }'

# ---- 3: checkin of an 8 GiB disk with 1 % dirty (128 KiB chunks)
big=$((GB * 1073741824)); n=$((big / 131072)); dirty=$((n / 100))
truncate -s $big big; "$IMG" random bm 16777216 5
"$B" -q -s st parcel create big --policy ip --memory-size 16777216 --disk-size $big >/dev/null 2>&1
"$IMG" random bseed 104857600 6; dd if=bseed of=big conv=notrunc bs=1M status=none   # 100 MiB of data, the rest zero
"$B" -q -s st checkin big --memory bm --disk big >/dev/null
rm -f big bseed
"$B" -q -s st checkout big --workspace wsb >/dev/null
serve wsb $W/cb
nbdsh -u "nbd+unix:///?socket=wsb/nbd.sock" -c "
import random
random.seed(2)
for i in random.sample(range($n), $dirty):
    h.pwrite(random.randbytes(131072), i * 131072)
h.flush()
"
unserve
"$B" workspace status wsb --json > st.json
a=$(now); "$B" -q workspace checkin wsb --json > ci.json; b=$(now)
"$B" -q workspace checkin wsb --json > ci0.json
awk -v t=$(secs $a $b) -v gb=$GB -v d=$dirty -v n=$n -v z="$(sed -n 's/.*"seconds": \([0-9.e-]*\).*/\1/p' ci0.json)" 'BEGIN {
  printf "3. workspace checkin, %d GiB disk, %d of %d chunks dirty (1 %%), 16 MiB memory: %.2f s (target < 2 s: %s)\n", gb, d, n, t, (t < 2 ? "ok" : "ABOVE")
  printf "   parts: the same checkin with nothing dirty (auth, previous keyrings, memory hashed, keyrings built, commit) %.2f s; hashing, sealing and sending the dirty chunks the rest\n", z }'
grep -E '"(new_chunks|new_bytes|meta_bytes)"' ci.json | tr -d ' ,' | paste -sd' ' | sed 's/^/   /'
echo "4. working set: BENCH=workingset make bench (bench/workingset.sh)"
