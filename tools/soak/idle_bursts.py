#!/usr/bin/env python3
"""Bursts of idle keep-alive connections: the memory they hold, and whether it comes back.

    tools/soak/idle_bursts.py [--server pingora|nginx|haproxy] [--binary target/release/pingora]
                              [--connections 10000] [--rounds 5] [--keepalive-ms 3000]

Each round opens CONNECTIONS connections to a server answering by itself, sends one
request on each (so each is an idle keep-alive connection after a request, the common
case), and leaves them idle. While they are open it measures the server's RSS (the whole
process tree) and the time a new client's request takes; then it waits for the server to
close them at its keep-alive timeout, checking when the clients see the close, and
measures RSS again once they are gone. One line per round:

    round 1: idle 10000 conns +151.2 MiB (15.5 KiB/conn) fresh request 0.4 ms;
             closed after 3.0-3.1 s; RSS after close 160.0 MiB (start 8.1 MiB)

Bounded (CONNECTIONS x ROUNDS connections, a few seconds a round), loopback only;
everything it starts is stopped at the end. Run it at low priority (nice -n 19).
"""
import argparse, os, selectors, socket, statistics, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servers  # noqa: E402

REQUEST = b"GET /idle HTTP/1.1\r\nHost: soak\r\n\r\n"


def open_idle(port, n):
    """Opens `n` connections, one request each, answers read; returns the sockets and
    when each got its answer (its idle time starts then)."""
    socks, answered = [], {}
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(REQUEST)
        socks.append(s)
        # Read answers in batches so the server is not waiting on us.
        if len(socks) % 500 == 0 or i == n - 1:
            for t in socks[-(len(socks) - len(answered)):]:
                read_response(t)
                answered[t.fileno()] = time.time()
    return socks, answered


def read_response(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("the server closed a connection before answering")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    while len(body) < length:
        body += s.recv(4096)
    return head.split(b" ", 2)[1]


def fresh_request_ms(port):
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /fresh HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
        status = read_response(s)
    if status != b"200":
        raise SystemExit(f"fresh request answered {status}")
    return (time.perf_counter() - t0) * 1000


def wait_closed(socks, answered, limit):
    """Waits until the server closed every socket; returns the (shortest, longest) time
    a connection stayed open after its answer (None when some were still open after
    `limit` seconds)."""
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    left = len(socks)
    first = last = None
    deadline = time.time() + limit
    while left and time.time() < deadline:
        for key, _ in sel.select(timeout=0.5):
            try:
                data = key.fileobj.recv(64)
            except (ConnectionResetError, BlockingIOError):
                data = b""
            if data:
                continue
            now = time.time() - answered[key.fileobj.fileno()]
            sel.unregister(key.fileobj)
            key.fileobj.close()
            left -= 1
            first = now if first is None else min(first, now)
            last = now if last is None else max(last, now)
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    return (first, last) if left == 0 else (first, None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="pingora", choices=["pingora", "nginx", "haproxy"])
    ap.add_argument("--binary", default="target/release/pingora")
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--keepalive-ms", type=int, default=20000,
                    help="long enough that no connection closes before all are open")
    ap.add_argument("--env", action="append", default=[],
                    help="NAME=VALUE for the server's environment (e.g. MALLOC_ARENA_MAX=1)")
    args = ap.parse_args()
    env = dict(e.split("=", 1) for e in args.env)
    srv = servers.start(args.server, binary=args.binary, keepalive_ms=args.keepalive_ms,
                        env=env)
    try:
        time.sleep(0.5)
        fresh_request_ms(srv.port)
        start_rss = srv.rss_kib()
        start_fds = srv.fds()
        print(f"{args.server}: start RSS {start_rss / 1024:.1f} MiB, {start_fds} fds")
        for r in range(1, args.rounds + 1):
            before = srv.rss_kib()
            socks, answered = open_idle(srv.port, args.connections)
            time.sleep(0.2)
            idle = srv.rss_kib()
            per = (idle - before) / args.connections
            fresh = statistics.median(fresh_request_ms(srv.port) for _ in range(5))
            first, last = wait_closed(socks, answered, args.keepalive_ms / 1000 + 30)
            # Let the server finish tearing the connections down.
            deadline = time.time() + 10
            while srv.fds() > start_fds + 5 and time.time() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)
            after = srv.rss_kib()
            closed = (f"each closed {first:.1f}-{last:.1f} s after its answer" if last is not None
                      else "NOT ALL CLOSED")
            print(f"round {r}: idle {args.connections} conns +{(idle - before) / 1024:.1f} MiB "
                  f"({per:.2f} KiB/conn, RSS {idle / 1024:.1f} MiB) fresh request {fresh:.1f} ms; "
                  f"{closed}; RSS after close {after / 1024:.1f} MiB; fds {srv.fds()}",
                  flush=True)
        print(f"{args.server}: end RSS {srv.rss_kib() / 1024:.1f} MiB (start {start_rss / 1024:.1f} MiB)")
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
