#!/usr/bin/env bash
# Peer benchmark: a synthetic enterprise trace (`vmcas synth`) ingested
# version by version, in time order, into vmcas and into each of restic,
# borg (fixed 4 KiB chunks, and its default chunker) and casync that is
# installed (`scripts/deps.sh bench` installs the Debian packages), in one
# run on the same files. Before each tool the trace's pages are dropped from
# the page cache (dd iflag=nocache, no root needed), so every tool reads
# from disk; `cat` of the same files, dropped the same way, is the
# baseline. Prints MB/s of images and bytes stored (du --apparent-size of
# the repository) per tool, and the issue 12 targets as ratios.
#
# Environment: BENCH_PEERS_PARCELS, BENCH_PEERS_VERSIONS, BENCH_PEERS_MEM,
# BENCH_PEERS_DISK (trace shape; default 4 x 4 x (32M + 224M) = 4 GiB; make
# it larger than RAM to be sure nothing is cached), BENCH_PEERS_COMPRESS
# (vmcas --compress for the parcels, default zstd), BENCH_PEERS_ONLY (a
# space-separated list of tools to run), BENCH_DIR (default /tmp).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
vmcas=${VMCAS_BENCH:-$top/build/bench/vmcas}
[ -x "$vmcas" ] || { echo "peers bench: build $vmcas first (make bench)" >&2; exit 1; }
W=$(mktemp -d "${BENCH_DIR:-/tmp}/vmcas-bench-peers.XXXXXX")
trap 'rm -rf "$W"' EXIT
export VMCAS_KEYS=$W/keys RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench
export BORG_BASE_DIR=$W/borg-home BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
export RESTIC_CACHE_DIR=$W/restic-cache

P=${BENCH_PEERS_PARCELS:-4} V=${BENCH_PEERS_VERSIONS:-4} MEM=${BENCH_PEERS_MEM:-32M} DISK=${BENCH_PEERS_DISK:-224M}
Z=${BENCH_PEERS_COMPRESS:-zstd}
"$vmcas" synth "$W/t" --parcels "$P" --versions "$V" --memory-size "$MEM" --disk-size "$DISK" -q
# the versions in time order: parcel version memory disk
order=$(awk -F'\t' 'NR > 2 { print $3, $1, $2, $4, $5 }' "$W/t/manifest.tsv" | sort -n | cut -d' ' -f2-)
files=$(awk '{ print $3; print $4 }' <<< "$order")
bytes=0; for f in $files; do bytes=$((bytes + $(stat -c %s "$W/t/$f"))); done
sync

drop() { for f in $files; do dd if="$W/t/$f" iflag=nocache count=0 status=none; done; }
now() { date +%s.%N; }
mbs() { awk -v n="$bytes" -v s="$1" 'BEGIN { printf "%.0f", n / s / 1e6 }'; }
stored() { du -s --apparent-size -B1 "$1" | cut -f1; }
want() { [ -z "${BENCH_PEERS_ONLY:-}" ] || [[ " $BENCH_PEERS_ONLY " == *" $1 "* ]]; }
declare -A RATE STORED

# each version of a parcel is staged as hard links under stage/PARCEL/,
# so that the file-based tools see one directory per parcel
stage() { rm -rf "$W/stage/$1"; mkdir -p "$W/stage/$1"; ln "$W/t/$2" "$W/stage/$1/memory"; ln "$W/t/$3" "$W/stage/$1/disk"; }

run() { # NAME: runs ingest_NAME over the whole trace, timed
  local t0 t1; drop; sync; t0=$(now)
  "ingest_$1" > "$W/$1.log" 2>&1 || { echo "$1: failed (see below)"; tail -5 "$W/$1.log"; return 1; }
  sync; t1=$(now)
  RATE[$1]=$(mbs "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
  STORED[$1]=$(stored "$W/repo-$1")
}

ingest_cat() { mkdir -p "$W/repo-cat"; for f in $files; do cat "$W/t/$f"; done > /dev/null; }

ingest_vmcas() {
  local S=$W/repo-vmcas p v m d seen=" "
  "$vmcas" -s "$S" init
  while read -r p v m d; do
    if [[ "$seen" != *" $p "* ]]; then
      "$vmcas" -s "$S" parcel create "$p" --policy all --chunk-size 4K --compress "$Z" \
        --memory-size "$(stat -c %s "$W/t/$m")" --disk-size "$(stat -c %s "$W/t/$d")"
      seen+="$p "
    fi
    "$vmcas" -q -s "$S" checkin "$p" --memory "$W/t/$m" --disk "$W/t/$d"
  done <<< "$order"
}

ingest_restic() {
  local R=$W/repo-restic p v m d
  restic -q -r "$R" init
  while read -r p v m d; do
    stage "$p" "$m" "$d"
    (cd "$W/stage" && restic -q -r "$R" backup --force --tag "$p" "$p")
  done <<< "$order"
}

borg_with() { # CHUNKER-PARAMS or "": borg 1.x, zstd 3 as in issue 12's table
  local R=$W/repo-$1 p v m d
  borg init -e repokey-blake2 "$R"
  while read -r p v m d; do
    stage "$p" "$m" "$d"
    (cd "$W/stage" && borg create --compression zstd,3 ${2:+--chunker-params "$2"} "$R::$p-$v" "$p")
  done <<< "$order"
}
ingest_borg_fixed4k() { borg_with borg_fixed4k fixed,4096; }
ingest_borg_default() { borg_with borg_default ""; }

ingest_casync() {
  local R=$W/repo-casync p v m d
  mkdir -p "$R/idx"
  while read -r p v m d; do
    casync make --store="$R/store" "$R/idx/$p-$v-mem.caibx" "$W/t/$m"
    casync make --store="$R/store" "$R/idx/$p-$v-disk.caibx" "$W/t/$d"
  done <<< "$order"
}

echo "trace: $P parcels x $V versions x ($MEM + $DISK) = $((bytes / 1048576)) MiB, read from disk by each tool (page cache dropped first); $(nproc) cores"
run cat
tools="vmcas"
command -v restic >/dev/null && tools+=" restic" || echo "restic: not installed (scripts/deps.sh bench), skipped"
command -v borg >/dev/null && tools+=" borg_fixed4k borg_default" || echo "borg: not installed (scripts/deps.sh bench), skipped"
command -v casync >/dev/null && tools+=" casync" || echo "casync: not installed (scripts/deps.sh bench), skipped"
ok=""
for t in $tools; do want "$t" || continue; run "$t" && ok+=" $t"; done

desc() { case $1 in
  cat) echo "cat > /dev/null (baseline)" ;;
  vmcas) echo "vmcas (policy all, 4 KiB, $Z)" ;;
  restic) echo "restic $(restic version | cut -d' ' -f2) (CDC ~1 MiB, auto)" ;;
  borg_fixed4k) echo "borg $(borg --version | cut -d' ' -f2) (fixed 4 KiB, zstd 3)" ;;
  borg_default) echo "borg $(borg --version | cut -d' ' -f2) (buzhash default, zstd 3)" ;;
  casync) echo "casync (CDC 64 KiB, zstd)" ;;
  esac; }
printf '%-44s %8s %14s\n' "tool (settings)" "MB/s" "stored bytes"
for t in cat $ok; do
  if [ "$t" = cat ]; then printf '%-44s %8s %14s\n' "$(desc cat)" "${RATE[cat]}" "-"
  else printf '%-44s %8s %14s  (%.2f x cat)\n' "$(desc "$t")" "${RATE[$t]}" "${STORED[$t]}" \
       "$(awk -v a="${RATE[$t]}" -v b="${RATE[cat]}" 'BEGIN { print a / b }')"; fi
done
verdict() { awk -v r="$1" -v t="$2" -v up="$3" 'BEGIN { ok = up ? r >= t : r <= t; printf "%.2f (target %s %s: %s)", r, up ? ">=" : "<=", t, ok ? "ok" : (up ? "BELOW" : "ABOVE") }'; }
if [[ " $ok " == *" vmcas "* ]]; then
  [[ " $ok " == *" restic "* ]] && echo "vmcas MB/s / restic MB/s:            $(verdict "$(awk -v a="${RATE[vmcas]}" -v b="${RATE[restic]}" 'BEGIN { print a / b }')" 2 1)"
  [[ " $ok " == *" borg_fixed4k "* ]] && echo "vmcas stored / borg fixed-4K stored:  $(verdict "$(awk -v a="${STORED[vmcas]}" -v b="${STORED[borg_fixed4k]}" 'BEGIN { print a / b }')" 0.9 0)"
  echo "vmcas MB/s / cat MB/s:               $(verdict "$(awk -v a="${RATE[vmcas]}" -v b="${RATE[cat]}" 'BEGIN { print a / b }')" 0.8 1)"
  echo "vmcas stat of its store:"
  "$vmcas" -s "$W/repo-vmcas" stat | sed 's/^/  /'
fi
# The floor of any store that compresses 4 KiB chunks one by one, as
# convergent encryption must: the distinct chunks of the trace, each
# compressed alone (vmcas analyze: policy all, 4 KiB, zstd), without any
# keyring, index or header; beside borg's whole repository.
if [ "$Z" = zstd ] && [ -x /usr/bin/python3 ] && "$vmcas" analyze -q "$W/t" --chunk-sizes 4K --compress zstd --json "$W/floor.json" >/dev/null 2>&1; then
  floor=$(/usr/bin/python3 -c 'import json, sys
s = [x for x in json.load(open(sys.argv[1]))["storage"] if x["policy"] == "all"]
print(max(s, key=lambda x: x["day"])["data_bytes"])' "$W/floor.json")
  if [[ " $ok " == *" borg_fixed4k "* ]]; then
    echo "floor: the distinct 4 KiB chunks compressed one by one (zstd, vmcas analyze): $floor bytes = $(awk -v a="$floor" -v b="${STORED[borg_fixed4k]}" 'BEGIN { printf "%.2f", a / b }') x borg fixed-4K stored"
  else
    echo "floor: the distinct 4 KiB chunks compressed one by one (zstd, vmcas analyze): $floor bytes"
  fi
fi
