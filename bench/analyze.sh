#!/usr/bin/env bash
# Benchmark of vmcas analyze on a synthetic trace in the page cache.
#
# Baselines measured in the same run, on the same files:
#   cat FILES > /dev/null            reading from the page cache
#   openssl sha256 FILES, 2 processes  hashing every byte once with SHA-NI
#                                    on both cores (the hash analyze uses)
#   gzip -6 of one disk image        zlib's speed on this kind of data
# Figures: analyze throughput without compression (all 8 default chunk
# sizes, and 4 KiB alone) with its ratio to the baselines; with gzip, the
# time against the zlib work on the distinct chunks spread over both cores
# (the CPU time analyze spent compressing, halved) and against gzip -6
# streaming the same number of bytes; peak memory, bytes per distinct chunk.
#
# Environment: VMCAS_BENCH (binary), BENCH_PARCELS, BENCH_VERSIONS,
# BENCH_MEM, BENCH_DISK (trace shape; default 8 x 8 x (8M + 24M) = 2 GiB).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
vmcas=${VMCAS_BENCH:-$top/build/bench/vmcas}
[ -x "$vmcas" ] || { echo "analyze bench: build $vmcas first (make bench)" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vmcas-bench-analyze.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

P=${BENCH_PARCELS:-8} V=${BENCH_VERSIONS:-8} MEM=${BENCH_MEM:-8M} DISK=${BENCH_DISK:-24M}
"$vmcas" synth "$tmp/t" --parcels "$P" --versions "$V" --memory-size "$MEM" --disk-size "$DISK" -q
files=("$tmp"/t/*/v*)
bytes=$(cat "${files[@]}" | wc -c)   # also warms the page cache

now() { date +%s.%N; }
# best NAME CMD...: the best of 3 wall-clock times, in seconds.
best() { local b="" t0 t1 d; for _ in 1 2 3; do
    t0=$(now); "$@" >/dev/null 2>&1; t1=$(now)
    d=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
    b=$(awk -v x="$d" -v y="${b:-1e9}" 'BEGIN { print (x < y) ? x : y }')
  done; echo "$b"; }
gbs() { awk -v n="$bytes" -v s="$1" 'BEGIN { printf "%.2f GB/s", n / s / 1e9 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

t_cat=$(best cat "${files[@]}")
sha2() { printf '%s\n' "${files[@]}" | xargs -P 2 -n $(( (${#files[@]} + 1) / 2 )) openssl sha256; }
t_sha=$(best sha2)
t_none=$(best "$vmcas" analyze "$tmp/t" -q --compress none)
t_none4=$(best "$vmcas" analyze "$tmp/t" -q --compress none --chunk-sizes 4K)
t_none1=$(best "$vmcas" analyze "$tmp/t" -q --compress none --threads 1)

echo "trace: $P parcels x $V versions x ($MEM + $DISK) = $(awk -v n="$bytes" 'BEGIN { printf "%.2f GB", n / 1e9 }'), in the page cache; $(nproc) cores"
echo "baseline  cat > /dev/null:                 $(gbs "$t_cat")"
echo "baseline  openssl sha256, 2 processes:   $(gbs "$t_sha")"
echo "analyze   --compress none, 8 chunk sizes:  $(gbs "$t_none")  ($(ratio "$t_cat" "$t_none") x cat, $(ratio "$t_sha" "$t_none") x sha256)"
echo "analyze   --compress none, 4K only:        $(gbs "$t_none4")  ($(ratio "$t_cat" "$t_none4") x cat, $(ratio "$t_sha" "$t_none4") x sha256)"
echo "analyze   --compress none, --threads 1:    $(gbs "$t_none1")"

# With gzip: one run, its JSON gives the distinct chunks; memory from time(1).
t0=$(now)
/usr/bin/time -f %M -o "$tmp/rss" "$vmcas" analyze "$tmp/t" -q --compress none,gzip --json "$tmp/a.json" >"$tmp/a.txt"
t1=$(now)
t_gzip=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
sizes=$(sed -n 's/.*"chunk_sizes": \[\(.*\)\],/\1/p' "$tmp/a.json" | head -1)
counts=$(sed -n 's/.*"distinct_chunks": \[\(.*\)\],/\1/p' "$tmp/a.json" | head -1)
tables=$(sed -n 's/.*"table_bytes": \([0-9]*\),/\1/p' "$tmp/a.json" | head -1)
read -r dbytes dchunks < <(awk -v s="$sizes" -v c="$counts" 'BEGIN {
  n = split(s, S, ", "); split(c, C, ", "); for (i = 1; i <= n; i++) { b += S[i] * C[i]; k += C[i] } print b, k }')
sample=$(ls "$tmp"/t/*/v3.disk | head -1)
t_gz1=$(best gzip -6 -c "$sample")
gz_rate=$(awk -v n="$(stat -c %s "$sample")" -v s="$t_gz1" 'BEGIN { print n / s }')
t_expect=$(awk -v d="$dbytes" -v r="$gz_rate" 'BEGIN { print d / (2 * r) }')
zcpu=$(sed -n 's/.*compressed once each in \([0-9.]*\) s of CPU.*/\1/p' "$tmp/a.txt")
echo "analyze   --compress none,gzip:            $(awk -v s="$t_gzip" 'BEGIN { printf "%.2f s", s }')"\
" for $(awk -v d="$dbytes" 'BEGIN { printf "%.0f MB", d / 1e6 }') of distinct chunks (all sizes)"
echo "          zlib work on the distinct chunks: $zcpu s of CPU, so $(awk -v z="$zcpu" 'BEGIN { printf "%.2f", z / 2 }') s"\
" on 2 cores (ratio $(ratio "$t_gzip" "$(awk -v z="$zcpu" 'BEGIN { print z / 2 }')"))"
echo "          (gzip -6 streams this data at $(awk -v r="$gz_rate" 'BEGIN { printf "%.0f MB/s", r / 1e6 }'):"\
" $(awk -v s="$t_expect" 'BEGIN { printf "%.2f s", s }') on 2 cores, ratio $(ratio "$t_gzip" "$t_expect"))"
echo "memory    peak RSS $(awk -v k="$(cat "$tmp/rss")" 'BEGIN { printf "%.1f MiB", k / 1024 }');"\
" chunk tables at most $(awk -v b="$tables" 'BEGIN { printf "%.1f MiB", b / 1048576 }')"\
" for $dchunks distinct chunks ($(awk -v b="$tables" -v k="$dchunks" 'BEGIN { printf "%.0f", b / k }') bytes each, parcel sets and positions included)"
