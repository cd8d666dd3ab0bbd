# Helpers of the workspace tests (source after tests/lib.sh): a workspace's
# disk served by `vmcas workspace serve` (nbdkit with vmcas's plugin) on a
# Unix socket, and the NBD clients. Every wait is bounded.
for t in nbdkit nbdsh nbdcopy qemu-img qemu-io; do
  command -v $t >/dev/null || skip_all "no $t (scripts/deps.sh installs it)"
done
[ -e "$TOP/build/nbdkit-vmcas-plugin.so" ] || skip_all "no build/nbdkit-vmcas-plugin.so (make builds it)"
# nbdsh runs python3 from PATH: the system's has the nbd module
nbdsh() { PATH=/usr/bin:$PATH command nbdsh "$@"; }
nbdcopy() { PATH=/usr/bin:$PATH command nbdcopy "$@"; }
py() { /usr/bin/python3 "$@"; }

WS_PID=
_ws_pids=()
cleanup_ws() { for p in "${_ws_pids[@]}"; do kill -9 "$p" 2>/dev/null; done; }
trap 'cleanup_ws; type cleanup_servers >/dev/null 2>&1 && cleanup_servers' EXIT

# serve_ws DIR LOG [ENV=VALUE...]: serves DIR's disk on DIR/nbd.sock and
# waits (at most 30 s) until a client can connect. $WS_PID is nbdkit
# (vmcas execs it); $WS_URI its URI.
serve_ws() {
  local dir=$1 log=$2; shift 2
  rm -f "$dir/nbd.sock"
  env "$@" "$VMCAS" workspace serve "$dir" >"$log.uri" 2>"$log" &
  WS_PID=$!
  _ws_pids+=("$WS_PID")
  WS_URI="nbd+unix:///?socket=$dir/nbd.sock"
  for _ in $(seq 300); do
    [ -S "$dir/nbd.sock" ] && nbdsh -u "$WS_URI" -c 'h.get_size()' >/dev/null 2>&1 && return 0
    kill -0 "$WS_PID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# stop_ws [SIG]: stops the nbdkit of serve_ws (at most 30 s).
stop_ws() {
  kill -"${1:-TERM}" "$WS_PID" 2>/dev/null
  for _ in $(seq 300); do kill -0 "$WS_PID" 2>/dev/null || break; sleep 0.1; done
  wait "$WS_PID" 2>/dev/null
  ! kill -0 "$WS_PID" 2>/dev/null
}

# wsj FILE FIELD: an integer field of a JSON file.
wsj() { json "$2" < "$1"; }
