#!/usr/bin/env bash
# What checkin and checkout really send and receive through a server is
# what `vmcas analyze` predicts for the same trace, where the definitions
# match: the data of uploads under ip and all (4 KiB chunks, no compression
# and gzip), and the data of complete-fetch downloads into a cache that
# holds the version before ("cas"). Every sealed chunk carries an 8-byte
# header the analysis does not count (docs/FORMAT.md): measured = predicted
# + 8 x chunks sent. Metadata differs by design (vmcas keeps keyrings as
# trees, the analysis prices flat ones), and so does delta (vmcas sends no
# all-zero chunk and adds a 16-byte nonce): see the README.
. "$TOP/tests/lib.sh"
. "$TOP/tests/server/server_lib.sh"
cd "$TMPDIR"
PY=/usr/bin/python3
B=${VMCAS_PLAIN:-$VMCAS}
"$B" synth -q tr --parcels 3 --versions 3 --memory-size 1M --disk-size 3M --days 10 >/dev/null
"$B" analyze -q tr --chunk-sizes 4K --compress none,gzip --json an.json >/dev/null
check "the analysis ran" '[ -s an.json ]'
# events in the analysis' global order: (timestamp, parcel, version)
grep -v '^#' tr/manifest.tsv | tail -n +2 | sort -t$'\t' -k3,3n -k1,1 -k2,2n > events.tsv
run() { "$B" -q -s "$URL" "$@"; }
# one store per compression: the all pool would otherwise share the chunks
# that gzip leaves as they are
for z in gzip none; do
  vmcas -s st-$z init >/dev/null
  export VMCAS_TOKEN=$(vmcas -s st-$z user add u | tail -1)
  ok "a server starts for $z" start_server st-$z serve-$z.log
  for pol in ip all; do
    : > up.$pol.$z
    while IFS=$'\t' read -r parcel version ts mem disk; do
      name=$pol-$z-$parcel
      if [ "$version" = 1 ]; then
        run parcel create $name --policy $pol --chunk-size 4K --compress $z \
          --memory-size $(stat -c %s tr/$mem) --disk-size $(stat -c %s tr/$disk) >/dev/null
      fi
      run checkin $name --memory tr/$mem --disk tr/$disk --json > ci.json || echo "# checkin $name failed"
      [ "$version" -ge 2 ] && echo "$parcel $version $(json sent_data_bytes < ci.json) $(json new_chunks < ci.json)" >> up.$pol.$z
    done < events.tsv
    $PY - "$pol" "$z" up.$pol.$z an.json > cmp.out <<'PYEOF'
import json, sys
pol, z, rows, an = sys.argv[1], sys.argv[2], sys.argv[3], json.load(open(sys.argv[4]))
pred = {(u["parcel"], u["version"]): u["data_bytes"] for u in an["upload"]
        if u["policy"] == pol and u["chunk_size"] == 4096 and u["compression"] == z}
bad = 0
for line in open(rows):
    p, v, sent, n = line.split()
    want = pred[(p, int(v))] + 8 * int(n)
    if int(sent) != want:
        bad += 1
        print("# %s@%s: sent %s, analyze %d + 8 x %s = %d" % (p, v, sent, pred[(p, int(v))], n, want))
print("# %s %s: %d uploads, %d differ" % (pol, z, sum(1 for _ in open(rows)), bad))
sys.exit(1 if bad else 0)
PYEOF
    rc=$?; cat cmp.out
    check "upload data under $pol, $z: measured = analyze + 8 x chunks sent, for every checkin" '[ $rc = 0 ] && [ -s up.$pol.$z ]'
  done
  [ $z = none ] || stop_server TERM
done
# downloads: complete fetch into a cache that holds version k-1 (no
# compression, so each sealed chunk is 4096 + 8 bytes)
for pol in ip all; do
  : > down.$pol
  while IFS=$'\t' read -r parcel version ts mem disk; do
    [ "$version" -ge 2 ] || continue
    name=$pol-none-$parcel
    rm -rf cache
    run --cache cache checkout $name --version $((version - 1)) --no-lease --memory o.m --disk o.d --json > co1.json
    VMCAS_TIMING=1 run --cache cache checkout $name --version $version --no-lease --memory o.m --disk o.d --json > co.json 2> co.err
    cmp -s o.m tr/$mem && cmp -s o.d tr/$disk || echo "# $name@$version differs"
    echo "$parcel $version $(json received_data_bytes < co.json)" >> down.$pol
    # what a mismatch needs to be understood: both checkouts' figures and the cache
    { echo "## $name@$version"; cat co1.json co.json co.err; "$B" -s cache stat --json 2>&1; } > diag.$pol.$parcel.$version
  done < events.tsv
  $PY - down.$pol an.json > cmp.out <<'PYEOF'
import json, sys
rows, an = sys.argv[1], json.load(open(sys.argv[2]))
pred = {(d["parcel"], d["version"]): d["bytes"] for d in an["download"]
        if d["mode"] == "complete" and d["method"] == "cas" and d["chunk_size"] == 4096 and d["compression"] == "none"}
bad = 0
for line in open(rows):
    p, v, got = line.split()
    got = int(got)
    if got % 4104 or got // 4104 * 4096 != pred[(p, int(v))]:
        bad += 1
        print("# %s@%s: received %d, analyze %d" % (p, v, got, pred[(p, int(v))]))
        try:
            print("".join("# " + l for l in open("diag.%s.%s.%s" % (rows.split(".")[1], p, v))))
        except OSError:
            pass
print("# %d downloads, %d differ" % (sum(1 for _ in open(rows)), bad))
sys.exit(1 if bad else 0)
PYEOF
  rc=$?; cat cmp.out
  check "download data under $pol (complete fetch, cas): measured = analyze + 8 x chunks fetched" '[ $rc = 0 ] && [ -s down.$pol ]'
done
ok "the server stops" stop_server TERM
done_testing
