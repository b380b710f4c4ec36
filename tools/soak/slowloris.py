#!/usr/bin/env python3
"""Slowloris: many connections trickling a request head, against a normal client's latency.

    tools/soak/slowloris.py [--server pingora|nginx|haproxy] [--connections 2000]
                            [--seconds 60] [--byte-every 2] [--header-timeout-ms 10000]

The server answers by itself (no origin). First a normal client sends sequential
keep-alive requests for 10 s alone (baseline p50/p99/max); then CONNECTIONS slow clients
each send one byte of a never-ending head every BYTE_EVERY seconds (reconnecting when
the server closes them, as an attacker would), while the normal client goes on for
SECONDS. Prints both latency sets, its failed requests, how many slow connections the
server closed (header timeout) and the server's RSS. Bounded, loopback only.
"""
import argparse, os, socket, statistics, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servers  # noqa: E402

HEAD = b"GET /slow HTTP/1.1\r\nHost: soak\r\nX-Pad: " + b"a" * 100000


def normal_client(port, seconds):
    lat, failed = [], 0
    s = None
    end = time.time() + seconds
    while time.time() < end:
        t0 = time.perf_counter()
        try:
            if s is None:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /normal HTTP/1.1\r\nHost: soak\r\n\r\n")
            data = b""
            while not data.endswith(b"ok"):
                chunk = s.recv(4096)
                if not chunk:
                    raise ConnectionError("closed")
                data += chunk
            if not data.startswith(b"HTTP/1.1 200"):
                failed += 1
            lat.append((time.perf_counter() - t0) * 1000)
        except (OSError, ConnectionError):
            failed += 1
            if s:
                s.close()
            s = None
        time.sleep(0.005)
    return lat, failed


def summary(lat):
    lat = sorted(lat)
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    return f"n={len(lat)} p50 {p(0.5):.2f} ms, p99 {p(0.99):.2f} ms, max {lat[-1]:.1f} ms"


class Slow:
    def __init__(self, port, n, every):
        self.port, self.n, self.every = port, n, every
        self.stop_flag = False
        self.closed_by_server = 0
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.setblocking(False)
        return [s, 0]

    def run(self):
        conns = []
        for _ in range(self.n):
            try:
                conns.append(self.connect())
            except OSError:
                pass
        while not self.stop_flag:
            t0 = time.time()
            for c in conns:
                try:
                    if c[1] < len(HEAD):
                        c[0].send(HEAD[c[1]:c[1] + 1])
                        c[1] += 1
                    try:
                        if c[0].recv(4096) == b"":
                            raise ConnectionError
                    except BlockingIOError:
                        pass
                except (OSError, ConnectionError):
                    self.closed_by_server += 1
                    c[0].close()
                    try:
                        c[:] = self.connect()
                    except OSError:
                        pass
            time.sleep(max(0.0, self.every - (time.time() - t0)))
        for c in conns:
            c[0].close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="pingora", choices=["pingora", "nginx", "haproxy"])
    ap.add_argument("--binary", default="target/release/pingora")
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--byte-every", type=float, default=2.0)
    ap.add_argument("--header-timeout-ms", type=int, default=10000)
    args = ap.parse_args()
    srv = servers.start(args.server, binary=args.binary, header_ms=args.header_timeout_ms)
    try:
        base, base_failed = normal_client(srv.port, 10)
        slow = Slow(srv.port, args.connections, args.byte_every)
        time.sleep(2)
        under, under_failed = normal_client(srv.port, args.seconds)
        rss = srv.rss_kib()
        slow.stop_flag = True
        slow.t.join(timeout=30)
        print(f"{args.server}: {args.connections} slowloris connections, a byte every "
              f"{args.byte_every}s, header timeout {args.header_timeout_ms} ms")
        print(f"  normal client alone:     {summary(base)}, failed {base_failed}")
        print(f"  normal client, slowloris: {summary(under)}, failed {under_failed}")
        print(f"  slow connections closed by the server: {slow.closed_by_server}; "
              f"server RSS {rss / 1024:.1f} MiB")
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
