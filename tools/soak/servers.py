"""Starting the servers the soak scripts compare, with equivalent settings, on loopback.

    pingora (the binary under test), nginx and HAProxy (Debian's packages), each either
    answering by itself (`respond`) or proxying to an origin (`proxy`), with the same
    keep-alive timeout, header timeout and worker count. Each server runs in a temporary
    directory of its own, in the foreground of its own session, and is stopped by
    `Server.stop()` (or at exit). Loopback only.
"""
import atexit, os, resource, signal, socket, subprocess, tempfile, time

RAISED_NOFILE = 200_000


def raise_nofile():
    """Raises this process's (and so its children's) open-file limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:  # root may raise the hard limit too
        resource.setrlimit(resource.RLIMIT_NOFILE, (RAISED_NOFILE, RAISED_NOFILE))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.02)
    return False


def rss_kib(pid):
    """Resident set size of `pid` in KiB (0 when gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def children_of(pid):
    """Pids whose parent is `pid`."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(entry))
        except (OSError, IndexError, ValueError):
            pass
    return out


def tree_rss_kib(pid):
    """RSS of `pid` and its children (nginx and HAProxy serve from workers)."""
    return rss_kib(pid) + sum(rss_kib(c) for c in children_of(pid))


def tree_fds(pid):
    return fd_count(pid) + sum(fd_count(c) for c in children_of(pid))


class Server:
    """One running server. `pid` is the process whose tree is measured."""

    def __init__(self, kind, port, proc, workdir, pid_file=None, conf=None, binary=None):
        self.kind, self.port, self.proc, self.dir = kind, port, proc, workdir
        self.pid_file, self.conf, self.binary = pid_file, conf, binary
        atexit.register(self.stop)

    @property
    def pid(self):
        if self.kind == "pingora" and self.pid_file:
            try:
                with open(self.pid_file) as f:
                    return int(f.read().strip() or 0) or self.proc.pid
            except (OSError, ValueError):
                pass
        return self.proc.pid

    def rss_kib(self):
        return tree_rss_kib(self.pid)

    def fds(self):
        return tree_fds(self.pid)

    def stop(self):
        pids = {self.proc.pid, self.pid}
        for pid in pids:
            try:
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except Exception:
            pass


def start(kind, binary="target/release/pingora", port=None, origin=None, workers=1,
          keepalive_ms=75_000, header_ms=60_000, env=None, extra_yaml="", tls=None,
          h2c=False, extra_routes="", extra_upstreams=""):
    """Starts `kind` (pingora, nginx, haproxy) on 127.0.0.1:`port`: answering `ok` itself,
    or proxying to `origin` (host:port) with upstream keep-alive. `tls` is a (cert, key)
    pair to terminate TLS with (ALPN h2 and http/1.1); `h2c` makes nginx and HAProxy
    speak cleartext HTTP/2 on the port (pingora recognises it on any plain listener)."""
    raise_nofile()
    port = port or free_port()
    d = tempfile.mkdtemp(prefix=f"soak-{kind}.")
    ka_s = max(1, keepalive_ms // 1000)
    hd_s = max(1, header_ms // 1000)
    if kind == "pingora":
        route = extra_routes + ("      - { upstream: origin }\n    upstreams:\n      origin:\n"
                 f"        peers: [\"{origin}\"]\n        read_timeout_ms: 5000\n" + extra_upstreams
                 if origin else
                 "      - { match: { path_prefix: / }, respond: { status: 200, body: \"ok\" } }\n")
        tls_yaml = (f"        tls: {{ cert: {tls[0]}, key: {tls[1]} }}\n" if tls else "")
        conf = os.path.join(d, "conf.yaml")
        with open(conf, "w") as f:
            f.write(f"""version: 1
threads: {workers}
pid_file: {d}/pingora.pid
upgrade_sock: {d}/upgrade.sock
error_log: {d}/error.log
grace_period_seconds: 0
graceful_shutdown_timeout_seconds: 5
{extra_yaml}services:
  - name: web
    listeners:
      - addr: 127.0.0.1:{port}
{tls_yaml}    keepalive_timeout_ms: {keepalive_ms}
    client_header_timeout_ms: {header_ms}
    routes:
{route}""")
        proc = subprocess.Popen([binary, "-c", conf], stdout=subprocess.DEVNULL,
                                stderr=open(os.path.join(d, "stderr.log"), "w"),
                                start_new_session=True, env={**os.environ, **(env or {})})
        server = Server(kind, port, proc, d, pid_file=f"{d}/pingora.pid", conf=conf,
                        binary=binary)
    elif kind == "nginx":
        loc = (f"proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_read_timeout 5s;"
               if origin else "return 200 ok;")
        up = f"upstream origin {{ server {origin}; keepalive 64; }}" if origin else ""
        listen_opts = " ssl http2" if tls else (" http2" if h2c else "")
        tls_conf = (f"ssl_certificate {tls[0]}; ssl_certificate_key {tls[1]};" if tls else "")
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""worker_processes {workers};
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile {RAISED_NOFILE};
events {{ worker_connections 30000; }}
http {{
  access_log off;
  keepalive_timeout {ka_s}s;
  keepalive_requests 1000000;
  client_header_timeout {hd_s}s;
  {up}
  server {{ listen 127.0.0.1:{port} reuseport{listen_opts}; {tls_conf} location / {{ {loc} }} }}
}}
""")
        proc = subprocess.Popen(["nginx", "-p", d, "-c", conf], stdout=subprocess.DEVNULL,
                                stderr=open(os.path.join(d, "stderr.log"), "w"),
                                start_new_session=True)
        server = Server(kind, port, proc, d, pid_file=f"{d}/nginx.pid", conf=conf)
    elif kind == "haproxy":
        backend = (f"backend origin\n  http-reuse always\n  server o {origin}\n" if origin else
                   "backend origin\n  http-request return status 200 content-type text/plain string ok\n")
        bind_opts = ""
        if tls:
            pem = os.path.join(d, "combined.pem")
            with open(pem, "w") as out:
                out.write(open(tls[0]).read() + open(tls[1]).read())
            bind_opts = f" ssl crt {pem} alpn h2,http/1.1"
        elif h2c:
            bind_opts = " proto h2"
        conf = os.path.join(d, "haproxy.cfg")
        with open(conf, "w") as f:
            f.write(f"""global
  maxconn 10500
  ulimit-n 20000
  no strict-limits
  nbthread {workers}
  pidfile {d}/haproxy.pid
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 5s
  timeout http-keep-alive {keepalive_ms}ms
  timeout http-request {header_ms}ms
frontend web
  bind 127.0.0.1:{port}{bind_opts}
  default_backend origin
{backend}""")
        # Master-worker mode: SIGUSR2 to the master reloads.
        proc = subprocess.Popen(["haproxy", "-W", "-f", conf], stdout=subprocess.DEVNULL,
                                stderr=open(os.path.join(d, "stderr.log"), "w"),
                                start_new_session=True)
        server = Server(kind, port, proc, d, conf=conf)
    else:
        raise ValueError(kind)
    if not wait_port(port):
        raise SystemExit(f"{kind} did not start; see {d}")
    return server


def start_nginx_origin(port=None, body_bytes=2, log_requests=False):
    """A fast origin (nginx answering 200 with `body_bytes` bytes; /big with 1 MiB).
    With `log_requests`, every request it answers is a line of `DIR/access.log`."""
    raise_nofile()
    port = port or free_port()
    d = tempfile.mkdtemp(prefix="soak-origin.")
    os.chmod(d, 0o755)  # nginx's workers run as nobody
    for name, data in (("big", os.urandom(1 << 20)), ("small", b"o" * body_bytes)):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
        os.chmod(os.path.join(d, name), 0o644)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 20000; }}
http {{
  {f"access_log {d}/access.log;" if log_requests else "access_log off;"}
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{port};
    root {d};
    location = /big {{ }}
    location = /status500 {{ return 500 "err"; }}
    location / {{ try_files /small =404; }}
  }}
}}
""")
    proc = subprocess.Popen(["nginx", "-p", d, "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    server = Server("origin", port, proc, d)
    if not wait_port(port):
        raise SystemExit("the nginx origin did not start")
    return server
