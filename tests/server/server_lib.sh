# Helpers of the server's shell tests (source after tests/lib.sh): a real
# `vmcas serve` on 127.0.0.1 at a free port, requests with curl, binary
# bodies with perl. Every wait is bounded.
command -v curl >/dev/null || skip_all "no curl"
command -v perl >/dev/null || skip_all "no perl"

SERVER_PID= PORT= URL=
_server_pids=()
cleanup_servers() { for p in "${_server_pids[@]}"; do kill -9 "$p" 2>/dev/null; done; }
trap cleanup_servers EXIT

# start_server STORE LOG ARGS...: waits (at most 30 s) for the "listening" line.
start_server() {
  local store=$1 log=$2; shift 2
  : > "$log"     # emptied here: the server's own redirection may come after the first look
  "$VMCAS" -s "$store" serve --listen 127.0.0.1:0 "$@" 2>"$log" &
  SERVER_PID=$!
  _server_pids+=("$SERVER_PID")
  for _ in $(seq 300); do
    PORT=$(sed -n 's/.*listening on https\?:\/\/127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$log")
    [ -n "$PORT" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  URL=http://127.0.0.1:$PORT
  [ -n "$PORT" ]
}

# stop_server [SIG]: signals the server and waits (at most 30 s); returns its status.
stop_server() {
  local sig=${1:-TERM} rc=0
  kill -"$sig" "$SERVER_PID" 2>/dev/null
  for _ in $(seq 300); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  wait "$SERVER_PID" || rc=$?
  return $rc
}

# req TOKEN METHOD PATH [CONTENT-TYPE BODYFILE] [curl args...]: prints the
# HTTP status; the body goes to $TMPDIR/body.
req() {
  local tok=$1 method=$2 path=$3; shift 3
  local args=(-s --path-as-is --max-time 30 -o "$TMPDIR/body" -w '%{http_code}' -X "$method")
  [ -n "$tok" ] && args+=(-H "Authorization: Bearer $tok")
  if [ $# -ge 2 ] && [ "${1#-}" = "$1" ]; then
    args+=(-H "Content-Type: $1" --data-binary "@$2"); shift 2
  fi
  curl "${args[@]}" "$@" "${URL}${path}"
}

# code: the "code" field of the last JSON error body.
code() { sed -n 's/.*"code":"\([A-Z]*\)".*/\1/p' "$TMPDIR/body"; }

# record NAME POLICY: the hex of a parcel record (vc_repo.h, format 2) with
# a random uuid; the MAC is zero (a server never checks it).
record() {
  perl -e '
    my ($name, $pol) = @ARGV;
    my $uuid = join "", map { chr int rand 256 } 1..16;
    my $hex = unpack "H*", $uuid;
    my %p = (delta => 0, ip => 1, all => 3);
    my $node = "parcel:$hex";
    my $data = $pol eq "all" ? "all" : $node;
    my $r = pack("a4 C C C C a16 V V Q< Q< q< a16 a16 C/a* C/a* C/a* a32",
                 "VPAR", 2, $p{$pol}, 0, 0, $uuid, 4096, 0, 1 << 20, 1 << 20, time, "", "", "", $node, $data, "");
    print unpack("H*", $r), " ", $node, "\n";' "$1" "$2"
}

# chunks_body FILE PARCEL DOMAIN N RECORDS...: a chunk request body. Each
# RECORD is "KIND:HEXTAG:DATA" (put) or a hex tag (missing, get).
chunk_head() { perl -e 'print pack("C/a* C/a* V", @ARGV)' "$@"; }
put_record() {  # KIND DATA [HEXTAG]: a put record; the tag is SHA-256(DATA) unless given
  perl -MDigest::SHA=sha256 -e '
    my ($k, $d, $t) = @ARGV;
    $t = defined $t ? pack("H*", $t) : sha256($d);
    print pack("C V a32", $k, length $d, $t), $d;' "$@"
}
sha() { perl -MDigest::SHA=sha256_hex -e 'print sha256_hex($ARGV[0])' "$1"; }
hexbytes() { perl -e 'print pack("H*", $ARGV[0])' "$1"; }
