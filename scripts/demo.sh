#!/usr/bin/env bash
# The demo behind `make demo`: a small synthetic enterprise (vmcas synth),
# its whole history checked in to four local stores, one per policy, a
# checkout of every parcel's latest version compared byte for byte, the
# four stores' sizes side by side, then the what-if analysis of the same
# history. Everything lives in DEMO_DIR (default: build/demo, made anew on
# each run), so the report can be opened afterwards.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
# from a source tree: build/vmcas and build/demo; installed (as
# /usr/share/vmcas/scripts/demo.sh): the vmcas on PATH and ./vmcas-demo
if [ -x "$top/build/vmcas" ]; then V=${VMCAS:-$top/build/vmcas}; D=${DEMO_DIR:-$top/build/demo}
else V=${VMCAS:-$(command -v vmcas)}; D=${DEMO_DIR:-$PWD/vmcas-demo}; fi
[ -n "$V" ] && [ -x "$V" ] || { echo "demo: no vmcas to run (build it, or install it)" >&2; exit 1; }
export VMCAS_BIN=$V
rm -rf "$D"; mkdir -p "$D"
export VMCAS_KEYS=$D/keys
CS=${DEMO_CHUNK:-16K}
if [ -t 1 ]; then say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }; else say() { printf '\n== %s\n' "$*"; }; fi

say "1. A synthetic enterprise: vmcas synth $D/trace"
"$V" synth "$D/trace" --seed 7 --parcels 4 --versions 6 --memory-size 8M --disk-size 24M
M=$D/trace/manifest.tsv
rows=$(grep -v '^#' "$M" | tail -n +2 | wc -l)
echo "$rows image versions in $M"

# columns by name, as the trace format allows any order
col() { awk -F'\t' -v name="$1" '!/^#/ && NF { for (i = 1; i <= NF; i++) if ($i == name) { print i; exit } }' "$M"; }
cp=$(col parcel); cv=$(col version); ct=$(col timestamp); cm=$(col memory); ck=$(col disk)
events=$(grep -v '^#' "$M" | awk -F'\t' -v p=$cp -v v=$cv -v t=$ct -v m=$cm -v d=$ck \
  'NF && !hdr++ { next } NF { print $t "\t" $p "\t" $v "\t" $m "\t" $d }' | sort -k1,1n -k2,2 -k3,3n)

say "2. Check in every version, in time order, under each policy ($CS chunks, zstd;"
echo "   group: one group per operating system, from the parcel's name)"
for pol in delta ip group all; do
  S=$D/store-$pol
  "$V" -s "$S" init > /dev/null
  while IFS=$'\t' read -r ts parcel ver mem disk; do
    if [ "$ver" = 1 ]; then
      p=$pol; [ $pol = group ] && p=group:${parcel##*-}
      "$V" -s "$S" parcel create "$parcel" --policy $p --chunk-size $CS --compress zstd \
        --memory-size "$(stat -c %s "$D/trace/$mem")" --disk-size "$(stat -c %s "$D/trace/$disk")" > /dev/null
    fi
    "$V" -q -s "$S" checkin "$parcel" --memory "$D/trace/$mem" --disk "$D/trace/$disk" > "$D/last-checkin"
  done <<< "$events"
  printf '%-8s %s\n' "$pol:" "$(tail -1 "$D/last-checkin")"
done

say "3. vmcas log and stat of the 'all' store"
first=$(echo "$events" | head -1 | cut -f2)
"$V" -s "$D/store-all" log "$first"
echo
"$V" -s "$D/store-all" stat

say "4. Check out the latest version of every parcel from every store, byte for byte"
latest=$(echo "$events" | awk -F'\t' '{ m[$2] = $4; d[$2] = $5 } END { for (p in m) print p "\t" m[p] "\t" d[p] }' | sort)
for pol in delta ip group all; do
  n=0
  while IFS=$'\t' read -r parcel mem disk; do
    "$V" -q -s "$D/store-$pol" checkout "$parcel" --memory "$D/out.mem" --disk "$D/out.disk"
    cmp -s "$D/out.mem" "$D/trace/$mem" && cmp -s "$D/out.disk" "$D/trace/$disk" || { echo "MISMATCH: $pol $parcel"; exit 1; }
    n=$((n + 1))
  done <<< "$latest"
  echo "$pol: $n parcels checked out, identical to the trace"
done
rm -f "$D/out.mem" "$D/out.disk"

say "5. The four policies side by side (vmcas stat --json of each store)"
logical=$("$V" -s "$D/store-delta" stat --json | grep -o '"logical_bytes": [0-9]*' | head -1 | grep -o '[0-9]*$')
printf '%-8s %14s %14s %14s %10s\n' policy data_bytes meta_bytes disk_bytes "vs delta"
base=
for pol in delta ip group all; do
  j=$("$V" -s "$D/store-$pol" stat --json)
  get() { echo "$j" | grep -o "\"$1\": [0-9]*" | head -1 | grep -o '[0-9]*$'; }
  data=$(get data_bytes); meta=$(get meta_bytes); disk=$(get disk_bytes)
  base=${base:-$((data + meta))}
  printf '%-8s %14s %14s %14s %9s%%\n' $pol $data $meta $disk $(( (data + meta) * 100 / base ))
done
echo "(images in all versions: $logical bytes; verify --full:" \
  "$("$V" -s "$D/store-all" verify --full | tail -1))"

say "6. Between two hosts: a server on 127.0.0.1, two hosts with their own keys and caches"
S=$D/store-server; "$V" -s "$S" init > /dev/null
export VMCAS_TOKEN=$("$V" -s "$S" user add demo | tail -1) VMCAS_PASSPHRASE="demo passphrase"
"$V" -s "$S" serve --listen 127.0.0.1:0 2> "$D/serve.log" & spid=$!
trap 'kill $spid 2>/dev/null' EXIT
for _ in $(seq 100); do port=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$D/serve.log"); [ -n "$port" ] && break; sleep 0.1; done
URL=http://127.0.0.1:$port; cat "$D/serve.log"
host() { local h=$1; shift; VMCAS_HOST=$h VMCAS_KEYS=$D/keys-$h VMCAS_CACHE=$D/cache-$h "$V" -q -s "$URL" "$@"; }
first=$(echo "$events" | head -1 | cut -f2)
vs=$(echo "$events" | awk -F'\t' -v p="$first" '$2 == p { print $3 "\t" $4 "\t" $5 }' | sort -n)
mem0=$(echo "$vs" | head -1 | cut -f2); disk0=$(echo "$vs" | head -1 | cut -f3)
host laptop parcel create "$first" --policy all --chunk-size $CS --memory-size "$(stat -c %s "$D/trace/$mem0")" \
  --disk-size "$(stat -c %s "$D/trace/$disk0")" > /dev/null
VMCAS_KEYS=$D/keys-office "$V" login "$URL"
h=laptop
summary() { grep -o "\"$1\": *[0-9]*" "$2" | grep -o '[0-9]*$'; }
while IFS=$'\t' read -r ver mem disk; do
  [ "$ver" -gt 1 ] && host $h checkout "$first" --memory "$D/out.mem" --disk "$D/out.disk" --json > "$D/co.json"
  host $h checkin "$first" --memory "$D/trace/$mem" --disk "$D/trace/$disk" --json > "$D/ci.json"
  printf '%-7s %s version %s: checkout received %9s bytes of data, checkin sent %9s\n' $h "$first" "$ver" \
    "$([ "$ver" -gt 1 ] && summary received_data_bytes "$D/co.json" || echo -)" "$(summary sent_data_bytes "$D/ci.json")"
  h=$([ $h = laptop ] && echo office || echo laptop)
done <<< "$vs"
host $h checkout "$first" --no-lease --memory "$D/out.mem" --disk "$D/out.disk"
last=$(echo "$vs" | tail -1)
cmp -s "$D/out.mem" "$D/trace/$(echo "$last" | cut -f2)" && cmp -s "$D/out.disk" "$D/trace/$(echo "$last" | cut -f3)" \
  && echo "$h: the latest version, checked out through the server, is identical to the trace" || { echo MISMATCH; exit 1; }
rm -f "$D/out.mem" "$D/out.disk"
kill $spid; wait $spid 2>/dev/null || true; trap - EXIT

say "7. The what-if analysis of the same history: vmcas analyze"
bash "$top/scripts/demo-analyze.sh" "$D"
echo
echo "Demo files: $D (stores, trace, analysis.json; the figures: $D/report/index.html)"
