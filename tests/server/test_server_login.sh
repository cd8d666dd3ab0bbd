#!/usr/bin/env bash
# vmcas login: a user's keys go to the server sealed under a passphrase
# (login --push) and come back on another host (login).
. "$TOP/tests/lib.sh"
. "$TOP/tests/server/server_lib.sh"
cd "$TMPDIR"

id=$(vmcas -s st init | sed -n 's/^store id \([0-9a-f]*\);.*/\1/p')
export VMCAS_TOKEN=$(vmcas -s st user add alice | tail -1)
ok "serve starts" start_server st serve.log
mkdir -p host1/$id host2/$id
chmod 700 host1 host1/$id host2 host2/$id
printf 'vmcas-key 1\n%s\n' "$(sha one)" > host1/$id/parcel-p1.key
printf 'vmcas-key 1\n%s\n' "$(sha two)" > host1/$id/group-eng.key
chmod 600 host1/$id/*.key
export VMCAS_PASSPHRASE="a long passphrase"
fails "login before any bundle" "no key bundle" env VMCAS_KEYS=$TMPDIR/host2 "$VMCAS" login "$URL"
ok "login --push" env VMCAS_KEYS=$TMPDIR/host1 "$VMCAS" login --push "$URL"
check "it says how many keys" 'grep -q "bundle of 2 keys" last.out'
fails "a wrong passphrase" "wrong passphrase" env VMCAS_KEYS=$TMPDIR/host2 VMCAS_PASSPHRASE=nope "$VMCAS" login "$URL"
check "and nothing written" '[ -z "$(ls host2/$id)" ]'
ok "login on another host" env VMCAS_KEYS=$TMPDIR/host2 "$VMCAS" login "$URL"
check "the keys are there, the same, mode 0600" 'cmp host1/$id/parcel-p1.key host2/$id/parcel-p1.key && cmp host1/$id/group-eng.key host2/$id/group-eng.key && [ "$(stat -c %a host2/$id/parcel-p1.key)" = 600 ]'
ok "login again: nothing new" env VMCAS_KEYS=$TMPDIR/host2 "$VMCAS" login "$URL"
check "it says they were there" 'grep -q "0 keys written.*2 already there" last.out'
printf 'vmcas-key 1\n%s\n' "$(sha other)" > host2/$id/parcel-p1.key
fails "a key that differs is left alone" "differs" env VMCAS_KEYS=$TMPDIR/host2 "$VMCAS" login "$URL"
check "and kept" 'grep -q "$(sha other)" host2/$id/parcel-p1.key'
fails "a bad token" "refused the token" env VMCAS_TOKEN=$(sha x) VMCAS_KEYS=$TMPDIR/host2 "$VMCAS" login "$URL"
fails "no token" "no token" env -u VMCAS_TOKEN VMCAS_KEYS=$TMPDIR/host2 "$VMCAS" login "$URL"
fails "not a URL" "not a server URL" "$VMCAS" login st
fails "no passphrase and no terminal" "no passphrase|VMCAS_PASSPHRASE" env -u VMCAS_PASSPHRASE VMCAS_KEYS=$TMPDIR/host2 setsid "$VMCAS" login "$URL"
ok "stop" stop_server TERM
done_testing
