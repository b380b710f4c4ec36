#!/usr/bin/env python3
"""Reloads and binary upgrades under load, counting every failed request.

    tools/soak/reload_under_load.py [--server pingora|nginx|haproxy] [--mode reload|upgrade]
        [--clients h1|h2c|h2tls|ws] [--rounds 100] [--interval 0.3] [--binary target/release/pingora]

In front of a fast origin (nginx answering `o` and /big with 1 MiB), the server under test
takes load from:
  h1     wrk, 50 keep-alive HTTP/1.1 connections;
  h2c    h2load, 10 HTTP/2 cleartext connections x 10 concurrent streams (h2load
         counts as failed the requests it could not send on a connection that got
         GOAWAY and those still open when it closed: it does not send them again on
         a new connection, as browsers do for requests a server did not process);
  h2tls  the same over TLS (ALPN h2);
  ws     50 WebSocket connections (to a WebSocket echo origin) each sending a message
         every 50 ms and checking its echo, plus wrk as for h1.
Meanwhile ROUNDS hand-overs happen, INTERVAL seconds apart: `reload` is SIGHUP for
pingora and nginx, SIGUSR2 to HAProxy's master; `upgrade` (pingora only) is SIGQUIT to
the running instance and a new `pingora -u` process. After every hand-over the pid file
must name a live process other than the previous one (pingora). At the end it prints
the requests done and failed, how the WebSockets ended, stray processes (instances of
this run still alive other than the current one), and the current instance's fds
compared with its first moments. Bounded and loopback only; stops everything it started.
"""
import argparse, os, re, signal, socket, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servers  # noqa: E402
import ws  # noqa: E402


def alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def instances(conf):
    """Live processes whose command line names `conf`."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if conf.encode() in f.read() and alive(int(entry)):
                        out.append(int(entry))
            except OSError:
                pass
    return out


def self_signed(d):
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def parse_wrk(text):
    total = int(re.search(r"(\d+) requests in", text).group(1))
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        errors += int(m.group(1))
    return total, errors, text.strip().splitlines()[-3:]


def parse_h2load(text):
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", text)
    if not m:
        return 0, -1, text.strip().splitlines()[-5:]
    total, started, done, ok, failed, errored, timeout = map(int, m.groups())
    return done, failed + errored + timeout + (started - done), [m.group(0)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="pingora", choices=["pingora", "nginx", "haproxy"])
    ap.add_argument("--mode", default="reload", choices=["reload", "upgrade"])
    ap.add_argument("--clients", default="h1", choices=["h1", "h2c", "h2tls", "ws"])
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--interval", type=float, default=0.3)
    ap.add_argument("--binary", default="target/release/pingora")
    args = ap.parse_args()
    if args.mode == "upgrade" and args.server != "pingora":
        sys.exit("binary upgrades are measured for pingora only")

    d = tempfile.mkdtemp(prefix="soak-reload.")
    if args.clients == "ws":
        origin = ws.EchoOrigin()
        origin_addr = f"127.0.0.1:{origin.port}"
    else:
        # Over HTTP/2 the origin counts what it answered, to tell streams a GOAWAY left
        # unprocessed (never reached the origin) from streams cut after being served.
        origin = servers.start_nginx_origin(log_requests=args.clients in ("h2c", "h2tls"))
        origin_addr = f"127.0.0.1:{origin.port}"
    extra = ""
    tls = args.clients == "h2tls"
    srv = servers.start(args.server, binary=args.binary, origin=origin_addr, workers=2,
                        tls=self_signed(d) if tls else None, extra_yaml=extra,
                        h2c=args.clients == "h2c")
    port = srv.port
    time.sleep(0.5)
    first_pid = srv.pid
    first_fds = srv.fds()
    duration = int(args.rounds * args.interval + 4)

    loads = []
    started = time.time()
    if args.clients in ("h1", "ws"):
        loads.append(("wrk", subprocess.Popen(
            ["wrk", "-t2", "-c50", f"-d{duration}s", "--latency", f"http://127.0.0.1:{port}/"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
    else:
        scheme = "https" if tls else "http"
        host = "localhost" if tls else "127.0.0.1"
        loads.append(("h2load", subprocess.Popen(
            ["h2load", "-c10", "-m10", "-t2", "-D", str(duration),
             f"{scheme}://{host}:{port}/"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
    sockets = None
    if args.clients == "ws":
        sockets = ws.Clients(port, 50, interval=0.05)
    time.sleep(1.5)

    pid_errors = []
    current = srv.pid
    upgrades = []
    for r in range(args.rounds):
        t0 = time.time()
        if args.server == "pingora" and args.mode == "upgrade":
            os.kill(current, signal.SIGQUIT)
            upgrades.append(subprocess.Popen([args.binary, "-c", srv.conf, "-u"],
                                             stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL, start_new_session=True))
        elif args.server == "haproxy":
            os.kill(srv.proc.pid, signal.SIGUSR2)
        else:
            os.kill(srv.pid if args.server == "pingora" else srv.proc.pid, signal.SIGHUP)
        if args.server == "pingora":
            while True:
                pid = srv.pid
                if pid != current and alive(pid) and servers.wait_port(port, 0.5):
                    break
                if time.time() - t0 > 10:
                    pid_errors.append(f"round {r}: pid file still names {pid}")
                    break
                time.sleep(0.002)
            current = srv.pid
        time.sleep(max(0.0, args.interval - (time.time() - t0)))

    results = []
    for name, p in loads:
        out, _ = p.communicate(timeout=duration + 60)
        results.append((name, *(parse_wrk(out) if name == "wrk" else parse_h2load(out))))
    ws_report = sockets.stop() if sockets else None
    time.sleep(6)  # the last old instance drains
    conf_key = srv.conf if args.server == "pingora" else srv.dir
    strays = [p for p in instances(conf_key) if p != srv.pid] if args.server == "pingora" else []
    fds_now = srv.fds()
    pooled = subprocess.run(["ss", "-Htn", "state", "established", "dst", origin_addr],
                            capture_output=True, text=True).stdout.count("\n")
    print(f"{args.server} {args.mode} x{args.rounds} with {args.clients} clients, "
          f"{args.interval}s apart:")
    for name, done, failed, tail in results:
        print(f"  {name}: {done} requests, {failed} failed  ({' | '.join(tail)})")
    if ws_report:
        print(f"  websockets: {ws_report}")
    if args.clients in ("h2c", "h2tls"):
        log = os.path.join(origin.dir, "access.log")
        served = sum(1 for _ in open(log)) if os.path.exists(log) else -1
        m = re.search(r"(\d+) succeeded", " ".join(results[0][3]))
        ok = int(m.group(1)) if m else -1
        print(f"  origin answered {served} requests, the clients received {ok}: "
              f"{served - ok} answered upstream but lost on the way (the rest of the "
              f"failed ones never reached the origin: left unprocessed by a GOAWAY)")
    if args.server == "pingora":
        print(f"  pid file: {'correct after every hand-over' if not pid_errors else pid_errors[:3]}")
        print(f"  stray processes: {len(strays)} {strays}")
        print(f"  fds of the current instance: {fds_now}, of which {pooled} pooled upstream "
              f"connections (first instance at start: {first_fds}); unexplained: "
              f"{fds_now - pooled - first_fds}")
    else:
        print(f"  fds of the server tree: {fds_now} (at start: {first_fds})")
    srv.stop()
    for p in upgrades:
        try:
            p.kill()
        except OSError:
            pass
    for pid in instances(conf_key) if args.server == "pingora" else []:
        os.kill(pid, signal.SIGKILL)
    origin.stop()


if __name__ == "__main__":
    main()
