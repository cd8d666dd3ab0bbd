#!/usr/bin/env bash
# The server's life: killed mid-upload (kill -9) and restarted, stopped by
# SIGTERM while a request is in flight, serving HTTPS.
. "$TOP/tests/lib.sh"
. "$TOP/tests/server/server_lib.sh"
cd "$TMPDIR"

vmcas -s st init >/dev/null
A=$(vmcas -s st user add alice | tail -1)
ok "serve starts" start_server st serve.log
read -r rec node < <(record p1 ip)
printf '{"record":"%s"}' "$rec" > create.json
check "alice creates p1" '[ "$(req "$A" PUT /v1/parcels/p1 application/json create.json)" = 201 ]'

# an upload of 200 chunks of 128 KiB, sent slowly; the server dies midway
perl -MDigest::SHA=sha256 -e '
  my ($parcel, $dom) = @ARGV;
  print pack("C/a* C/a* V", $parcel, $dom, 200);
  for my $i (1..200) { my $d = "VC" . pack("N", $i) x 32767; $d = substr($d, 0, 131072);
                       print pack("C V a32", 0, length $d, sha256($d)), $d; }' p1 "$node" > big.bin
curl -s --max-time 60 --limit-rate 2M -o /dev/null -H "Authorization: Bearer $A" \
     -H "Content-Type: application/octet-stream" --data-binary @big.bin "$URL/v1/chunks/put" &
cpid=$!
sleep 3
ok "kill -9 mid-upload" kill -9 "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null
wait "$cpid" 2>/dev/null
ok "the store verifies after the kill" vmcas -s st verify --full
ok "the server starts again on it" start_server st serve2.log
check "p1 is there, with no version" '[ "$(req "$A" GET /v1/parcels/p1)" = 200 ] && grep -q "\"latest\":0" body'
check "the upload can be sent again, whole" '[ "$(req "$A" POST /v1/chunks/put application/octet-stream big.bin)" = 200 ]'
ok "the store verifies" vmcas -s st verify --full

# a put is durable at a flush (or a commit), not at its reply: killed
# before one, the server has forgotten it; after one, it has not
perl -MDigest::SHA=sha256 -e '
  my ($parcel, $dom, $seed) = @ARGV;
  print pack("C/a* C/a* V", $parcel, $dom, 4);
  for my $i (1..4) { my $d = "VC$seed" . ("x" x (1000 * $i)); print pack("C V a32", 0, length $d, sha256($d)), $d; }' p1 "$node" a > small-a.bin
perl -MDigest::SHA=sha256 -e '
  my ($parcel, $dom, $seed) = @ARGV;
  print pack("C/a* C/a* V", $parcel, $dom, 4);
  for my $i (1..4) { print sha256("VC$seed" . ("x" x (1000 * $i))); }' p1 "$node" a > small-a.tags
check "a put of 4 chunks" '[ "$(req "$A" POST /v1/chunks/put application/octet-stream small-a.bin)" = 200 ]'
check "missing says they are there" '[ "$(req "$A" POST /v1/chunks/missing application/octet-stream small-a.tags)" = 200 ] && [ "$(od -An -tx1 body | tr -d " ")" = 00 ]'
ok "kill -9 before a flush" kill -9 "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null
ok "the server starts again" start_server st serve3.log
check "they are missing again (the retry of a checkin sends them)" '[ "$(req "$A" POST /v1/chunks/missing application/octet-stream small-a.tags)" = 200 ] && [ "$(od -An -tx1 body | tr -d " ")" = 0f ]'
check "sent again and flushed" '[ "$(req "$A" POST /v1/chunks/put application/octet-stream small-a.bin)" = 200 ] && [ "$(req "$A" POST /v1/chunks/flush)" = 200 ]'
ok "kill -9 after the flush" kill -9 "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null
# (a log of its own: start_server would read the port of an old one)
ok "the server starts again" start_server st serve4.log
check "they are still there" '[ "$(req "$A" POST /v1/chunks/missing application/octet-stream small-a.tags)" = 200 ] && [ "$(od -An -tx1 body | tr -d " ")" = 00 ]'
ok "the store verifies" vmcas -s st verify --full

# SIGTERM while an upload is in flight: the upload finishes, then the server exits 0
curl -s --max-time 60 --limit-rate 4M -o up.out -w '%{http_code}' -H "Authorization: Bearer $A" \
     -H "Content-Type: application/octet-stream" --data-binary @big.bin "$URL/v1/chunks/put" > up.code &
cpid=$!
sleep 2
t0=$(date +%s)
ok "SIGTERM during an upload: exit 0" stop_server TERM
wait "$cpid"
check "the upload in flight was answered 200" '[ "$(cat up.code)" = 200 ]'
check "new connections were refused meanwhile" '! curl -s --max-time 5 "$URL/v1/store" >/dev/null'
check "it said it was finishing requests" 'grep -q "finishing requests in progress" serve4.log && grep -q "stopped" serve4.log'
ok "the store verifies" vmcas -s st verify --full

# HTTPS
if openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 2 -subj /CN=127.0.0.1 \
     -addext "subjectAltName=IP:127.0.0.1" >/dev/null 2>&1; then
  ok "serve with TLS" start_server st tls.log --tls-cert cert.pem --tls-key key.pem
  check "it says https" 'grep -q "listening on https://127.0.0.1:$PORT" tls.log'
  check "a client that trusts the certificate" \
    '[ "$(curl -s --max-time 10 --cacert cert.pem -o body -w "%{http_code}" -H "Authorization: Bearer $A" https://127.0.0.1:$PORT/v1/store)" = 200 ]'
  check "a client that does not is refused" '! curl -s --max-time 10 -o /dev/null https://127.0.0.1:$PORT/v1/store'
  check "plain HTTP gets no answer" '! curl -s --max-time 5 -o /dev/null -H "Authorization: Bearer $A" http://127.0.0.1:$PORT/v1/store || [ "$(curl -s --max-time 5 -o /dev/null -w "%{http_code}" http://127.0.0.1:$PORT/v1/store)" != 200 ]'
  ok "stop" stop_server TERM
  fails "a key without a certificate" "both --tls-cert and --tls-key" vmcas -s st serve --listen 127.0.0.1:0 --tls-key key.pem
  fails "a certificate that is not one" "cannot listen|TLS" vmcas -s st serve --listen 127.0.0.1:0 --tls-cert create.json --tls-key create.json
fi
check "no sanitizer report" '! grep -q "Sanitizer\|runtime error" serve.log serve2.log serve3.log serve4.log tls.log 2>/dev/null'
done_testing
