#!/usr/bin/env bash
# The server against hostile and careless clients, by raw HTTP: tokens,
# ownership, admin-only calls, path tricks, sizes, types, bad bodies.
. "$TOP/tests/lib.sh"
. "$TOP/tests/server/server_lib.sh"
cd "$TMPDIR"

vmcas -s st init >/dev/null
fails "serve needs users" "add a user first" vmcas -s st serve --listen 127.0.0.1:0
A=$(vmcas -s st user add alice | tail -1)
B=$(vmcas -s st user add bob | tail -1)
R=$(vmcas -s st user add root --admin | tail -1)
check "user add prints a token alone on its last line" '[ ${#A} = 64 ] && [ -z "${A//[0-9a-f]/}" ]'
check "the users file keeps only hashes, mode 0600" '! grep -q "$A" st/users && [ "$(stat -c %a st/users)" = 600 ]'
fails "a user name twice" "exists" vmcas -s st user add alice
fails "a bad user name" "invalid user name" vmcas -s st user add ../x
ok "user list" vmcas -s st user list
check "user list names the roles" 'vmcas -s st user list | grep -q "^root  *admin"'
fails "a bad --listen" "expected HOST:PORT" vmcas -s st serve --listen nowhere

ok "serve starts" start_server st serve.log --timeout 2 --threads 2
check "it says where it listens" 'grep -q "listening on http://127.0.0.1:$PORT (store st)" serve.log'

# tokens
check "no token: 401" '[ "$(req "" GET /v1/store)" = 401 ] && [ "$(code)" = EACCES ]'
check "an unknown token: 401" '[ "$(req 0011223344556677889900112233445566778899001122334455667788990011 GET /v1/store)" = 401 ]'
check "a token that is not one: 401" '[ "$(req "x y" GET /v1/store)" = 401 ]'
check "401 says how to authenticate" 'curl -s -i "$URL/v1/store" | grep -qi "^WWW-Authenticate: Bearer"'
check "a good token: the store" '[ "$(req "$A" GET /v1/store)" = 200 ] && grep -q "\"user\":\"alice\"" body'

# ownership
read -r rec node < <(record p1 ip)
printf '{"record":"%s"}' "$rec" > create.json
check "alice creates p1" '[ "$(req "$A" PUT /v1/parcels/p1 application/json create.json)" = 201 ]'
check "again: 409 EEXIST" '[ "$(req "$A" PUT /v1/parcels/p1 application/json create.json)" = 409 ] && [ "$(code)" = EEXIST ]'
check "alice sees p1" '[ "$(req "$A" GET /v1/parcels/p1)" = 200 ]'
check "bob does not: 404" '[ "$(req "$B" GET /v1/parcels/p1)" = 404 ] && grep -q "no parcel" body'
check "bob's 404 for p1 reads as for a parcel that does not exist" \
  '[ "$(req "$B" GET /v1/parcels/p1; cat body)" = "$(req "$B" GET /v1/parcels/p2; cat body | sed s/p2/p1/)" ]'
check "bob's list is empty" '[ "$(req "$B" GET /v1/parcels)" = 200 ] && grep -q "\"parcels\":\[\]" body'
check "bob cannot lease p1" '[ "$(printf "{\"host\":\"h\"}" > h.json; req "$B" POST /v1/parcels/p1/lease application/json h.json)" = 404 ]'
check "bob's stat has no p1" '[ "$(req "$B" GET /v1/stat)" = 200 ] && ! grep -q p1 body'
read -r rec2 node2 < <(record q1 ip)
printf '{"record":"%s","owner":"bob"}' "$rec2" > for-bob.json
check "alice may not create for bob: 403" '[ "$(req "$A" PUT /v1/parcels/q1 application/json for-bob.json)" = 403 ]'
check "root may" '[ "$(req "$R" PUT /v1/parcels/q1 application/json for-bob.json)" = 201 ] && [ "$(req "$B" GET /v1/parcels/q1)" = 200 ]'
check "gc is for administrators: 403" '[ "$(req "$A" POST /v1/admin/gc)" = 403 ] && [ "$(code)" = EACCES ]'
check "verify too" '[ "$(req "$B" POST /v1/admin/verify)" = 403 ]'
check "breaking a lease too" '[ "$(req "$A" POST /v1/parcels/p1/lease/break)" = 403 ]'
check "root runs verify" '[ "$(req "$R" POST /v1/admin/verify)" = 200 ] && grep -q "\"problems\":0" body'

# names in paths
check "../ in a name: 400" '[ "$(req "$A" GET /v1/parcels/../versions)" = 400 ]'
check "%2e%2e: 400" '[ "$(req "$A" GET /v1/parcels/%2e%2e/versions)" = 400 ] && [ "$(code)" = EINVAL ]'
check "%2f in a name: not a parcel" '[ "$(req "$A" GET /v1/parcels/p1%2f..%2f..)" = 404 ]'
long=$(printf 'a%.0s' $(seq 300))
check "a very long name: 400" '[ "$(req "$A" GET /v1/parcels/$long)" = 400 ]'
check "a very long path: refused" '[ "$(req "$A" GET /v1/$(printf "x%.0s" $(seq 20000)))" -ge 400 ]'
check "outside /v1/: 404" '[ "$(req "$A" GET /v1/../etc/passwd)" = 404 ] && [ "$(req "$A" GET /)" = 404 ]'
check "a version that is not a number: 400" '[ "$(req "$A" GET /v1/parcels/p1/versions/1x)" = 400 ]'
check "a method that does not fit: 405" '[ "$(req "$A" DELETE /v1/parcels/p1)" = 405 ]'

# types and bodies
chunk_head p1 "$node" 1 > m.bin; hexbytes "$(sha nothing)" >> m.bin
check "missing with a JSON type: 415" '[ "$(req "$A" POST /v1/chunks/missing application/json m.bin)" = 415 ]'
check "missing: one bit" '[ "$(req "$A" POST /v1/chunks/missing application/octet-stream m.bin)" = 200 ] && [ "$(od -An -tx1 body | tr -d " ")" = 01 ]'
printf '{"record":' > bad.json
check "bad JSON: 400" '[ "$(req "$A" PUT /v1/parcels/p9 application/json bad.json)" = 400 ] && grep -q "not JSON" body'
printf '[1,2]' > arr.json
check "JSON that is not an object: 400" '[ "$(req "$A" PUT /v1/parcels/p9 application/json arr.json)" = 400 ]'
printf '{"record":"zz"}' > zz.json
check "a record that is not hex: 400" '[ "$(req "$A" PUT /v1/parcels/p9 application/json zz.json)" = 400 ]'
printf '{"record":"%s"}' "${rec2%??}00" > badrec.json
check "a record that is malformed: 400" '[ "$(req "$A" PUT /v1/parcels/p9 application/json badrec.json)" = 400 ]'
printf '{"record":"%s"}' "$rec" > reuse.json
check "a record reusing p1's uuid: 400" '[ "$(req "$B" PUT /v1/parcels/p9 application/json reuse.json)" = 400 ]'
head -c 70000 /dev/zero | tr '\0' ' ' > big.json
check "a JSON body over 64 KiB: 413" '[ "$(req "$A" PUT /v1/parcels/p9 application/json big.json)" = 413 ] && [ "$(code)" = EFBIG ]'
# an upload announced at 100 MB is refused before its body is sent
reply=$(exec 3<>/dev/tcp/127.0.0.1/$PORT
  printf 'POST /v1/chunks/put HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000000\r\n\r\n' "$A" >&3
  timeout 10 head -1 <&3)
check "an upload over 64 MiB: 413 at once" '[[ "$reply" == "HTTP/1.1 413"* ]]'

# uploads
put_record 0 "hello chunk" > rec.bin
{ chunk_head p1 "$node" 1; cat rec.bin; } > put1.bin
check "a good upload" '[ "$(req "$A" POST /v1/chunks/put application/octet-stream put1.bin)" = 200 ] && grep -q "\"received\":1" body'
{ chunk_head p1 "$node" 1; put_record 0 "other bytes" "$(sha "not these")"; } > wrong.bin
check "a chunk whose tag is wrong: 400 EBADMSG" '[ "$(req "$A" POST /v1/chunks/put application/octet-stream wrong.bin)" = 400 ] && [ "$(code)" = EBADMSG ]'
{ chunk_head p1 "$node" 1; hexbytes "$(sha "not these")"; } > m2.bin
check "and it was not stored" '[ "$(req "$A" POST /v1/chunks/missing application/octet-stream m2.bin)" = 200 ] && [ "$(od -An -tx1 body | tr -d " ")" = 01 ]'
{ chunk_head p1 "$node" 2; cat rec.bin; put_record 0 "second chunk" | head -c 20; } > cut.bin
check "a body cut short: 400" '[ "$(req "$A" POST /v1/chunks/put application/octet-stream cut.bin)" = 400 ] && grep -q "cut short" body'
{ chunk_head p1 "$node" 1; cat rec.bin rec.bin; } > extra.bin
check "a body longer than announced: 400" '[ "$(req "$A" POST /v1/chunks/put application/octet-stream extra.bin)" = 400 ]'
{ chunk_head p1 "$node" 1; perl -e 'print pack("C V a32", 0, 1 << 30, "")'; } > huge.bin
check "a record claiming 1 GiB: 400" '[ "$(req "$A" POST /v1/chunks/put application/octet-stream huge.bin)" = 400 ]'
{ chunk_head p1 all 1; cat rec.bin; } > dom.bin
check "a domain that is not the parcel's: 403" '[ "$(req "$A" POST /v1/chunks/put application/octet-stream dom.bin)" = 403 ]'
{ chunk_head p1 "$node" 1; cat rec.bin; } > bobput.bin
check "an upload to another's parcel: 404" '[ "$(req "$B" POST /v1/chunks/put application/octet-stream bobput.bin)" = 404 ]'
printf '\x02p1\x03' > badhead.bin
check "a head with a bad domain: 400" '[ "$(req "$A" POST /v1/chunks/put application/octet-stream badhead.bin)" = 400 ]'
{ chunk_head p1 "$node" 2; hexbytes "$(sha "hello chunk")"; } > get-short.bin
check "get with fewer tags than announced: 400" '[ "$(req "$A" POST /v1/chunks/get application/octet-stream get-short.bin)" = 400 ]'
{ chunk_head p1 "$node" 1; hexbytes "$(sha "hello chunk")"; } > get.bin
check "a chunk put and not yet flushed: missing says present" '{ chunk_head p1 "$node" 1; hexbytes "$(sha "hello chunk")"; } > m3.bin && [ "$(req "$A" POST /v1/chunks/missing application/octet-stream m3.bin)" = 200 ] && [ "$(od -An -tx1 body | tr -d " ")" = 00 ]'
check "get returns the record and an end record" '[ "$(req "$A" POST /v1/chunks/get application/octet-stream get.bin)" = 200 ] && [ "$(wc -c < body)" = $((37 + 11 + 37)) ] && grep -q "hello chunk" body'
check "flush: 200" '[ "$(req "$A" POST /v1/chunks/flush)" = 200 ] && grep -q "\"flushed\":true" body'
check "flush without a token: 401" '[ "$(req "" POST /v1/chunks/flush)" = 401 ]'
check "flush with a body: 413" '[ "$(req "$A" POST /v1/chunks/flush application/octet-stream m3.bin)" = 413 ]'
check "flush with GET: 405" '[ "$(req "$A" GET /v1/chunks/flush)" = 405 ]'
printf 'not a commit' > commit.bin
check "a malformed commit: 400, nothing committed" '[ "$(req "$A" POST /v1/parcels/p1/commit application/octet-stream commit.bin)" = 400 ] && req "$A" GET /v1/parcels/p1 >/dev/null && grep -q "\"latest\":0" body'

# users change while the server runs
vmcas -s st user remove bob >/dev/null
sleep 1.2
check "a removed user's token stops working" '[ "$(req "$B" GET /v1/store)" = 401 ]'
check "the others still work" '[ "$(req "$A" GET /v1/store)" = 200 ]'

# a slow client holds only its own connection, and not for long (--timeout 2)
exec 5<>/dev/tcp/127.0.0.1/$PORT
printf 'POST /v1/chunks/put HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\nab' "$A" >&5
t0=$(date +%s%N)
check "others are served meanwhile" '[ "$(req "$A" GET /v1/store)" = 200 ]'
check "promptly" '[ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 1500 ]'
check "the slow client is cut off after the timeout" 'timeout 15 cat <&5 >/dev/null'
exec 5<&-

ok "SIGTERM: a clean exit" stop_server TERM
check "it says it stopped" 'grep -q "vmcas serve: stopped" serve.log'
check "no sanitizer report" '! grep -q "Sanitizer\|runtime error" serve.log'
ok "the store verifies" vmcas -s st verify --full
done_testing
