#!/usr/bin/python3
# sd_harness.py: plays systemd's part for `vmcas serve`, as the unit uses it
# (dist/vmcas.service, dist/vmcas.socket), and prints TAP lines:
#  - readiness: with $NOTIFY_SOCKET, READY=1 comes once the server accepts
#    requests (a request right after it is answered), with STATUS=;
#  - reload: SIGHUP gives RELOADING=1 then READY=1, and a user added just
#    before is known at once;
#  - socket activation and restart: the harness holds the listening socket
#    (as vmcas.socket does) and restarts the server (SIGTERM, a new one on
#    the same socket) while checkins run: every checkin commits, none fails.
# Usage: sd_harness.py VMCAS STORE WORKDIR   (the store has parcels p0..p3
# and WORKDIR/token holds an administrator's token, WORKDIR/m*, d* images)
import os, signal, socket, subprocess, sys, time, threading, urllib.request

vmcas, store, work = sys.argv[1:4]
token = open(os.path.join(work, "token")).read().strip()
n = 0
failed = False

def tap(ok, name, why=""):
    global n, failed
    n += 1
    print(("ok %d - %s" if ok else "not ok %d - %s") % (n, name))
    if not ok:
        failed = True
        for line in str(why).splitlines()[:20]:
            print("# " + line)
    sys.stdout.flush()

def notify_socket():
    path = os.path.join(work, "notify.sock")
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(30)
    return s, path

def wait_msg(ns, key, deadline=30):
    """The first datagram holding KEY=..., and every message seen."""
    seen = []
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            msg = ns.recv(4096).decode()
        except socket.timeout:
            break
        seen.append(msg)
        if any(l.startswith(key + "=") for l in msg.split("\n")):
            return msg, seen
    return None, seen

def get(port, path, tok=None, timeout=10):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path))
    if tok:
        req.add_header("Authorization", "Bearer " + tok)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError as e:
        return str(e)

def start(args, env_extra, listen_fd=None, log="serve.log"):
    env = dict(os.environ)
    env.update(env_extra)
    env.pop("LISTEN_FDS", None)
    env.pop("LISTEN_PID", None)
    cmd = [vmcas, "-q", "-s", store, "serve"] + args
    if listen_fd is not None:
        # as systemd does: the socket as fd 3, LISTEN_FDS=1, LISTEN_PID the server's pid
        env["LISTEN_FDS"] = "1"
        cmd = ["/bin/sh", "-c", 'LISTEN_PID=$$ exec "$@"', "sh"] + cmd
    def pre():
        if listen_fd is not None:
            os.dup2(listen_fd, 3)
    logf = open(os.path.join(work, log), "ab")
    return subprocess.Popen(cmd, env=env, preexec_fn=pre, stdout=logf, stderr=logf, close_fds=listen_fd is None)

def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        return p.wait(60)
    except subprocess.TimeoutExpired:
        p.kill()
        return "timeout"

# --- readiness and reload ----------------------------------------------------------
ns, nspath = notify_socket()
probe = socket.socket()
probe.bind(("127.0.0.1", 0))
port = probe.getsockname()[1]
probe.close()
p = start(["--listen", "127.0.0.1:%d" % port], {"NOTIFY_SOCKET": nspath})
msg, seen = wait_msg(ns, "READY")
tap(msg is not None, "READY=1 sent to $NOTIFY_SOCKET", seen)
st = get(port, "/v1/store", token)
tap(st == 200, "a request right after READY=1 is answered (%s)" % st)
tap(msg is not None and ("STATUS=listening on http://127.0.0.1:%d" % port) in msg, "STATUS= says where it listens", msg)

r = subprocess.run([vmcas, "-q", "-s", store, "user", "add", "hupuser"], capture_output=True, text=True)
newtok = r.stdout.strip().split("\n")[-1]
p.send_signal(signal.SIGHUP)
m1, seen = wait_msg(ns, "RELOADING")
m2, seen2 = wait_msg(ns, "READY")
tap(m1 is not None and m2 is not None, "SIGHUP: RELOADING=1, then READY=1", seen + seen2)
st = get(port, "/v1/store", newtok)
tap(st == 200, "a user added before SIGHUP is known at once (%s)" % st)
tap(p.poll() is None, "the server still runs after SIGHUP")
rc = stop(p)
tap(rc == 0, "SIGTERM: exit 0 (%s)" % rc)
msgs = []
ns.settimeout(1)
try:
    while True:
        msgs.append(ns.recv(4096).decode())
except OSError:
    pass
tap(any("STOPPING=1" in m for m in msgs), "STOPPING=1 at shutdown", msgs)

# --- socket activation, and a restart under load -------------------------------------
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 0))
ls.listen(512)
port = ls.getsockname()[1]
ns.settimeout(30)
p = start(["--listen", "127.0.0.1:0"], {"NOTIFY_SOCKET": nspath}, ls.fileno(), "serve-sa.log")
msg, seen = wait_msg(ns, "READY")
tap(msg is not None and get(port, "/v1/store", token) == 200, "socket activation: serves on the socket it was given, not --listen", seen)

url = "http://127.0.0.1:%d" % port
results = {}
def checkins(i):
    env = dict(os.environ, VMCAS_TOKEN=token)
    ok = 0
    errs = []
    for k in range(3):
        img = "m%d" % ((i + k) % 4)
        r = subprocess.run([vmcas, "-q", "--no-cache", "-s", url, "checkin", "p%d" % i, "--memory",
                            os.path.join(work, img), "--disk", os.path.join(work, "d%d" % i)],
                           env=env, capture_output=True, text=True)
        if r.returncode == 0:
            ok += 1
        else:
            errs.append(r.stderr)
    results[i] = (ok, errs)
threads = [threading.Thread(target=checkins, args=(i,)) for i in range(4)]
for t in threads:
    t.start()
restarts = 0
for _ in range(3):
    time.sleep(0.7)
    old = p
    old.send_signal(signal.SIGTERM)     # it drains what it has in flight ...
    p = start(["--listen", "127.0.0.1:0"], {"NOTIFY_SOCKET": nspath}, ls.fileno(), "serve-sa.log")
    rc = old.wait(60)                   # ... while the new one takes the queue
    restarts += rc == 0
    wait_msg(ns, "READY")
for t in threads:
    t.join(300)
tap(restarts == 3, "three restarts, each old server exits 0 (%d)" % restarts)
bad = {i: r for i, r in results.items() if r[0] != 3}
tap(not bad, "every checkin during the restarts committed (%s)" % {i: r[0] for i, r in results.items()},
    "\n".join(e for r in bad.values() for e in r[1]))
rc = stop(p)
tap(rc == 0, "last server: exit 0 (%s)" % rc)
sys.exit(1 if failed else 0)
