#!/usr/bin/env bash
# Store benchmark: checkin of new data (all, 4 KiB, none and zstd), checkin
# of an unchanged image (in the page cache, and read from disk), checkout,
# and the keyring cost of a 1 % change, each as MB/s and as a ratio to
# baselines measured in the same run (the machine is noisy; the ratio is
# what to compare across runs): SHA-256 on every core, `cat` of the images
# from disk (their pages dropped first), and a direct-I/O `dd` write.
# The issue 12 targets are printed as ratios. BENCH_RUNS=N repeats the
# whole benchmark N times (default 1) to show the spread.
# Images: 1 GiB in all (128 MiB memory + 896 MiB disk) by default;
# BENCH_MB sets the size. The store goes under BENCH_DIR (default /tmp).
set -eu
if [ "${BENCH_RUNS:-1}" -gt 1 ] && [ -z "${BENCH_RUN_ONE:-}" ]; then
  for i in $(seq "$BENCH_RUNS"); do echo "-- run $i of $BENCH_RUNS"; BENCH_RUN_ONE=1 bash "$0" || exit 1; done
  exit 0
fi
B=${VMCAS_BENCH:?run through make bench}
T=${BENCH_BIN:?}/bench_hash
IMG=${TOP}/build/tools/vc-testimg
MB=${BENCH_MB:-1024}
W=$(mktemp -d "${BENCH_DIR:-/tmp}/vmcas-bench.XXXXXX")
trap 'rm -rf "$W"' EXIT
export VMCAS_KEYS=$W/keys
mem=$((MB / 8 * 1048576)); disk=$((MB * 1048576 - mem))
"$IMG" random "$W/m" $mem 1; "$IMG" random "$W/d" $disk 2
"$IMG" new "$W/mx" $mem 3; "$IMG" new "$W/dx" $disk 4
cat "$W"/m "$W"/d "$W"/mx "$W"/dx > /dev/null   # into the page cache
sync                                            # and nothing left to write back

base=$("$T")
echo "$base" | sed 's/^/baseline: /; s/$/ MB\/s/'
sha2=$(echo "$base" | awk '/^sha256_2core/ {print $2}')
drop() { for f in "$@"; do dd if="$f" iflag=nocache count=0 status=none; done; }
# the disk: read the images back with their pages dropped; write 512 MiB
# with direct I/O, as the store's writer does
drop "$W/m" "$W/d"; t0=$(date +%s.%N); cat "$W/m" "$W/d" > /dev/null; t1=$(date +%s.%N)
cat_mbs=$(awk -v a="$t0" -v b="$t1" -v n=$((mem + disk)) 'BEGIN { printf "%.0f", n / (b - a) / 1e6 }')
t0=$(date +%s.%N); dd if=/dev/zero of="$W/dd" bs=1M count=512 oflag=direct status=none; t1=$(date +%s.%N); rm -f "$W/dd"
dd_mbs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", 512 * 1048576 / (b - a) / 1e6 }')
echo "baseline: cat of the images from disk $cat_mbs MB/s"
echo "baseline: dd oflag=direct write (1 MiB blocks) $dd_mbs MB/s"
cat "$W/m" "$W/d" > /dev/null   # back into the page cache
# target NAME MB/s BASELINE-NAME BASELINE-MB/s RATIO: one issue 12 target
target() { awk -v n="$1" -v r="$2" -v bn="$3" -v b="$4" -v t="$5" 'BEGIN { x = r / b
  printf "  target: %-44s %6.0f MB/s / %-24s %6.0f MB/s = %5.2f  (>= %.1f: %s)\n", n, r, bn, b, x, t, (x >= t ? "ok" : "BELOW") }'; }

rate() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / s / 1e6 }'; }
report() { # name bytes seconds target
  local r; r=$(rate "$2" "$3")
  local t="(no target)"
  [ "$4" -gt 0 ] && t="target >= $4 MB/s  $([ "$r" -ge "$4" ] && echo ok || echo BELOW)"
  printf '%-50s %6s MB/s  %5.2f x sha256(2 cores)  %s\n' "$1" "$r" \
    "$(awk -v r="$r" -v s="$sha2" 'BEGIN { print r / s }')" "$t"
}
timed() { local t0 t1; sync; t0=$(date +%s.%N); "$@" > "$W/out.json"; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'; }

for z in none zstd; do
  S=$W/store-$z; "$B" -s "$S" init >/dev/null
  "$B" -s "$S" parcel create p --policy all --chunk-size 4K --compress $z --memory-size $mem --disk-size $disk >/dev/null
  s=$(timed "$B" -q -s "$S" checkin p --memory "$W/m" --disk "$W/d" --json)
  report "checkin new random data, all, 4K, $z" $((mem + disk)) "$s" $([ $z = none ] && echo 350 || echo 200)
  if [ $z = none ]; then
    r=$(rate $((mem + disk)) "$s")
    target "new data checkin" "$r" "sha256 on 2 cores" "$sha2" 0.2
    target "new data checkin" "$r" "dd direct write" "$dd_mbs" 0.6
  fi
done
S=$W/store-none
cat "$W/m" "$W/d" > /dev/null
s=$(timed "$B" -q -s "$S" checkin p --memory "$W/m" --disk "$W/d" --json)
report "checkin unchanged image, all, 4K" $((mem + disk)) "$s" 1000
target "unchanged checkin, page cache" "$(rate $((mem + disk)) "$s")" "sha256 on 2 cores" "$sha2" 0.8
drop "$W/m" "$W/d"
s=$(timed "$B" -q -s "$S" checkin p --memory "$W/m" --disk "$W/d" --json)
report "checkin unchanged image, all, 4K, from disk" $((mem + disk)) "$s" 0
target "unchanged checkin, from disk" "$(rate $((mem + disk)) "$s")" "cat from disk" "$cat_mbs" 0.8
# Packs are written with direct I/O, so right after the checkins they are
# not in the page cache: the first checkout reads them from disk (as a
# server after a restart would); the second finds them cached. A checkout
# from disk reads the packs and writes the images on one device, so its
# baseline is the device doing the same at once: the packs read with
# direct I/O (4 MiB blocks) while as many bytes as the images hold are
# written with direct I/O; the rate is the images' bytes over the time
# until both are done.
for z in none zstd; do
  S=$W/store-$z
  drop "$S"/packs/*/*.pack
  t0=$(date +%s.%N)
  (for f in "$S"/packs/*/*.pack; do dd if="$f" of=/dev/null iflag=direct bs=4M status=none; done) &
  dd if=/dev/zero of="$W/dd" oflag=direct bs=4M count=$(((mem + disk) / 4194304)) status=none
  wait
  t1=$(date +%s.%N); rm -f "$W/dd"
  pk=$(cat "$S"/packs/*/*.pack | wc -c)
  dev_mbs=$(awk -v a="$t0" -v b="$t1" -v n=$((mem + disk)) 'BEGIN { printf "%.0f", n / (b - a) / 1e6 }')
  echo "baseline: the packs ($((pk / 1048576)) MiB) read with direct I/O while the images' size is written with direct I/O: $dev_mbs MB/s"
  s=$(timed "$B" -q -s "$S" checkout p --memory "$W/o.m" --disk "$W/o.d")
  report "checkout, all, 4K, $z, packs on disk" $((mem + disk)) "$s" 600
  awk -v r="$(rate $((mem + disk)) "$s")" -v b="$dev_mbs" 'BEGIN {
    printf "  ratio:  %-44s %6.0f MB/s / %-24s %6.0f MB/s = %5.2f  (the device'"'"'s ceiling for this work)\n", "checkout from packs on disk", r, "direct pack copy", b, r / b }'
  cmp -s "$W/o.m" "$W/m" && cmp -s "$W/o.d" "$W/d" || { echo "checkout differs!"; exit 1; }
  rm -f "$W/o.m" "$W/o.d"
  cat "$S"/packs/*/*.pack > /dev/null
  s=$(timed "$B" -q -s "$S" checkout p --memory "$W/o.m" --disk "$W/o.d")
  report "checkout, all, 4K, $z, packs in page cache" $((mem + disk)) "$s" 600
  rm -f "$W/o.m" "$W/o.d"
done

# mixed VM-like images (20 % zero pages, 10 % repeated pages), ip, 64K
S=$W/store-mixed; "$B" -s "$S" init >/dev/null
"$B" -s "$S" parcel create p --policy ip --chunk-size 64K --compress zstd --memory-size $mem --disk-size $disk >/dev/null
s=$(timed "$B" -q -s "$S" checkin p --memory "$W/mx" --disk "$W/dx" --json)
report "checkin VM-like image, ip, 64K, zstd" $((mem + disk)) "$s" 0

# keyring metadata of a version that changed 1 % of its chunks (in runs)
S=$W/store-none
"$IMG" mutate "$W/d" 9 1
s=$(timed "$B" -q -s "$S" checkin p --memory "$W/m" --disk "$W/d" --json)
meta=$(grep -o '"meta_bytes": *[0-9]*' "$W/out.json" | grep -o '[0-9]*$')
flat=$(( (mem + disk) / 4096 * 64 ))
pct=$(awk -v m="$meta" -v f="$flat" 'BEGIN { printf "%.2f", 100 * m / f }')
printf '%-50s %s bytes = %s %% of a flat keyring (%s bytes)  target <= 3 %%  %s\n' "keyring of a 1 % change (runs of 4-64 pages)" \
  "$meta" "$pct" "$flat" "$(awk -v p="$pct" 'BEGIN { print (p <= 3 ? "ok" : "ABOVE") }')"
