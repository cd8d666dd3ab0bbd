# ceph_lib.sh — a one-node Ceph cluster for the tests and the benchmark:
# one ceph-mon and one ceph-osd on memstore, on 127.0.0.1, no mgr, no auth.
# Everything (config, mon data, OSD data, sockets, logs) lives under one
# directory of $TMPDIR, so runs in parallel do not clash.
#
#   ceph_start [POOL...]   starts it; sets CEPH_DIR, CEPH_CONF, CEPH_PORT,
#                          creates each POOL (pg_num 8); installs a trap
#                          that stops it when the shell exits
#   ceph_stop              stops it and removes CEPH_DIR
#   ceph_osd_stop / ceph_osd_start   the OSD stops answering / answers
#                          again (memstore keeps its objects only while the
#                          process lives, so SIGSTOP/SIGCONT, not a restart)
#   ceph_pool_create POOL
#
# The cluster takes a few seconds to come up. $CEPH_MEMSTORE_BYTES bounds the
# OSD's memory store (default 1 GiB).

CEPH_DIR= CEPH_CONF= CEPH_PORT= CEPH_MON_PID= CEPH_OSD_PID= CEPH_POOL=

ceph_have() { command -v ceph-mon >/dev/null && command -v ceph-osd >/dev/null && command -v ceph >/dev/null; }

_ceph_free_port() {
        local p
        for _ in $(seq 1 50); do
                p=$(( 20000 + RANDOM % 30000 ))
                if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo $p; return 0; fi
        done
        return 1
}

# on exit: the servers of server_lib.sh (if any) first, then the cluster
_ceph_exit() {
        declare -F cleanup_servers >/dev/null && cleanup_servers
        ceph_stop
}

ceph_cli() { timeout 30 ceph -c "$CEPH_CONF" "$@"; }

# CEPH_OBJECTSTORE=bluestore: the OSD keeps its objects in a file (sparse,
# under CEPH_DIR) and so across a restart (ceph_osd_restart); the default,
# memstore, starts faster and keeps them only while the OSD runs
_ceph_store_conf() {
        if [ "${CEPH_OBJECTSTORE:-memstore}" = bluestore ]; then
                printf '%s\n' "osd objectstore = bluestore" "bluestore block path = $CEPH_DIR/osd.block" \
                        "bluestore block create = true" "bluestore block size = ${CEPH_BLUESTORE_BYTES:-4294967296}" \
                        "bluestore cache size = 134217728" "bluestore fsck on mount = false"
        else
                printf '%s\n' "osd objectstore = memstore" "memstore device bytes = ${CEPH_MEMSTORE_BYTES:-1073741824}"
        fi
}

ceph_start() {
        ceph_have || { echo "ceph-mon/ceph-osd/ceph not installed" >&2; return 1; }
        CEPH_DIR=$(mktemp -d "${TMPDIR:-/tmp}/vmcas-ceph.XXXXXX")
        CEPH_PORT=$(_ceph_free_port) || return 1
        CEPH_CONF=$CEPH_DIR/ceph.conf
        local fsid; fsid=$(cat /proc/sys/kernel/random/uuid)
        mkdir -p "$CEPH_DIR/mon" "$CEPH_DIR/osd" "$CEPH_DIR/run" "$CEPH_DIR/log"
        cat > "$CEPH_CONF" <<CONF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$CEPH_PORT
mon initial members = a
public network = 127.0.0.1/32
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon allow pool delete = true
osd crush chooseleaf type = 0
run dir = $CEPH_DIR/run
admin socket = $CEPH_DIR/run/\$name.asok
log file = $CEPH_DIR/log/\$name.log
pid file = $CEPH_DIR/run/\$name.pid
ms bind ipv4 = true
ms bind ipv6 = false
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
debug ms = 0
[mon]
mon data = $CEPH_DIR/mon
mon cluster log file = $CEPH_DIR/log/cluster.log
[osd]
osd data = $CEPH_DIR/osd
$(_ceph_store_conf)
osd max object size = 134217728
osd op num threads per shard = 1
osd op num shards = 1
# the OSD sets no crush location or device class itself at start (the
# script places it): its first command to the monitor can otherwise go
# out before it knows the cluster's fsid, and the OSD then exits
osd crush update on start = false
osd class update on start = false
CONF
        monmaptool --create --clobber --fsid "$fsid" --addv a "[v1:127.0.0.1:$CEPH_PORT]" \
                "$CEPH_DIR/monmap" >/dev/null || return 1
        ceph-mon -c "$CEPH_CONF" -i a --mkfs --monmap "$CEPH_DIR/monmap" >"$CEPH_DIR/log/mkfs-mon.out" 2>&1 \
                || { cat "$CEPH_DIR/log/mkfs-mon.out" >&2; return 1; }
        ceph-mon -c "$CEPH_CONF" -i a -f >"$CEPH_DIR/log/mon.out" 2>&1 &
        CEPH_MON_PID=$!
        trap _ceph_exit EXIT
        local osd_id
        osd_id=$(ceph_cli osd create) || { echo "ceph: the monitor does not answer" >&2; return 1; }
        ceph-osd -c "$CEPH_CONF" -i "$osd_id" --mkfs >"$CEPH_DIR/log/mkfs-osd.out" 2>&1 \
                || { cat "$CEPH_DIR/log/mkfs-osd.out" >&2; return 1; }
        ceph_cli osd crush add "osd.$osd_id" 1.0 host=localhost root=default >/dev/null 2>&1 || true
        CEPH_OSD_ID=$osd_id
        _ceph_osd_run || return 1
        local p
        CEPH_POOL=${1:-}
        for p in "$@"; do ceph_pool_create "$p" || return 1; done
        return 0
}

# starts the OSD; if it exits in its first seconds, starts it again (at
# most 3 times)
_ceph_osd_run() {
        local try i
        for try in 1 2 3; do
                ceph-osd -c "$CEPH_CONF" -i "$CEPH_OSD_ID" -f >>"$CEPH_DIR/log/osd.out" 2>&1 &
                CEPH_OSD_PID=$!
                for i in $(seq 1 30); do
                        kill -0 "$CEPH_OSD_PID" 2>/dev/null || break
                        timeout 5 ceph -c "$CEPH_CONF" osd stat 2>/dev/null | grep -q "1 up" && return 0
                        sleep 0.2
                done
                kill -0 "$CEPH_OSD_PID" 2>/dev/null && return 0
                wait "$CEPH_OSD_PID" 2>/dev/null
        done
        echo "ceph: the OSD does not stay up (see $CEPH_DIR/log/osd.out):" >&2
        tail -5 "$CEPH_DIR/log/osd.out" >&2
        return 1
}

ceph_pool_create() {
        ceph_cli osd pool create "$1" 8 8 >/dev/null 2>&1 || return 1
        ceph_cli osd pool set "$1" size 1 --yes-i-really-mean-it >/dev/null 2>&1 || true
        # wait until the pool takes writes
        local i
        for i in $(seq 1 60); do
                kill -0 "$CEPH_OSD_PID" 2>/dev/null || break
                timeout 5 rados -c "$CEPH_CONF" -p "$1" put .probe /dev/null 2>/dev/null && \
                        { rados -c "$CEPH_CONF" -p "$1" rm .probe 2>/dev/null; return 0; }
                sleep 0.2
        done
        echo "ceph: pool $1 does not become writable" >&2
        return 1
}

ceph_osd_stop() { kill -STOP "$CEPH_OSD_PID"; }
# _ceph_pool_writable TRIES WHAT: waits (TRIES half-seconds at most) until
# the first pool takes writes; says WHAT went wrong if it never does
_ceph_pool_writable() {
        local i
        for i in $(seq 1 "$1"); do
                timeout 3 rados -c "$CEPH_CONF" -p "$CEPH_POOL" put .probe /dev/null 2>/dev/null && return 0
                sleep 0.5
        done
        echo "ceph: $2" >&2
        return 1
}
# ceph_osd_start: resumes the OSD and waits until the first pool takes
# writes again (an OSD stopped past its heartbeat grace is marked down and
# boots again first)
ceph_osd_start() {
        kill -CONT "$CEPH_OSD_PID"
        _ceph_pool_writable 10 "the OSD does not come back"
}

# ceph_osd_restart: kills the OSD (-9) and starts it again on the same
# objects (bluestore only), then waits as ceph_osd_start does
ceph_osd_restart() {
        kill -9 "$CEPH_OSD_PID" 2>/dev/null; wait "$CEPH_OSD_PID" 2>/dev/null
        _ceph_osd_run || return 1
        _ceph_pool_writable 20 "the restarted OSD does not take writes"
}

ceph_stop() {
        local pid
        for pid in $CEPH_OSD_PID $CEPH_MON_PID; do
                [ -n "$pid" ] || continue
                kill -CONT "$pid" 2>/dev/null
                kill "$pid" 2>/dev/null
        done
        for pid in $CEPH_OSD_PID $CEPH_MON_PID; do
                [ -n "$pid" ] || continue
                for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
                kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
        done
        CEPH_OSD_PID= CEPH_MON_PID=
        [ -n "$CEPH_DIR" ] && rm -rf "$CEPH_DIR"
        CEPH_DIR=
}
