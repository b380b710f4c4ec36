#!/usr/bin/env python3
"""Origin faults: what a client of the proxy sees, and how it recovers.

    tools/soak/origin_faults.py [--server pingora|nginx|haproxy] [--binary target/release/pingora]

The proxy (read timeout 2 s towards the origin where configurable) sits in front of a
Python origin run as a separate process, which this script kills, stops or makes
misbehave. For each fault it prints the statuses a steady client saw (one request every
20 ms) and when service came back:
  killed-restarted  the origin is killed, down 2 s, started again on the same port;
  stopped-3s        SIGSTOP for 3 s, then SIGCONT;
  never-answers     the origin accepts and reads, never answers;
  garbage-status    the origin answers `HELLO WORLD` instead of a status line;
  closes-mid-body   Content-Length 100000, 1000 bytes, then close;
  chunked-cut       a chunked body without its last chunk, then close.
A response cut mid-body must reach the client truncated (fewer bytes than announced, or
no last chunk), never as a complete-looking message. Loopback only; bounded.
"""
import argparse, os, signal, socket, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servers  # noqa: E402

ORIGIN = r'''
import socket, sys, threading
mode, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port)); s.listen(512)
def serve(c):
    try:
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                d = c.recv(4096)
                if not d: return
                buf += d
            _, _, buf = buf.partition(b"\r\n\r\n")
            if mode == "normal":
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            elif mode == "never":
                while c.recv(4096): pass
                return
            elif mode == "garbage":
                c.sendall(b"HELLO WORLD\r\n\r\n"); return
            elif mode == "midbody":
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000); return
            elif mode == "chunkcut":
                c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n" + b"y" * 1000 + b"\r\n"); return
    finally:
        c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
'''


def start_origin(mode, port):
    p = subprocess.Popen([sys.executable, "-c", ORIGIN, mode, str(port)],
                         start_new_session=True)
    servers.wait_port(port, 5)
    return p


def one_request(port, path="/", timeout=10):
    """(status or error text, body bytes, whether the message was complete, seconds)."""
    t0 = time.time()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while True:
                try:
                    d = s.recv(65536)
                except (ConnectionResetError, socket.timeout) as e:
                    data += b""
                    break
                if not d:
                    break
                data += d
    except OSError as e:
        return (type(e).__name__, 0, False, time.time() - t0)
    head, _, body = data.partition(b"\r\n\r\n")
    if not head:
        return ("no response", 0, False, time.time() - t0)
    status = head.split(b" ", 2)[1].decode()
    headers = {l.split(b":", 1)[0].strip().lower(): l.split(b":", 1)[1].strip()
               for l in head.split(b"\r\n")[1:] if b":" in l}
    if b"content-length" in headers:
        complete = len(body) == int(headers[b"content-length"])
        size = len(body)
    elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        complete = body.endswith(b"0\r\n\r\n")
        size = len(body)
    else:
        complete, size = True, len(body)
    return (status, size, complete, time.time() - t0)


def steady(port, seconds, during=None):
    """Requests every 20 ms for `seconds`; `during(t)` is called once at t=0.5 s."""
    out = []
    t0 = time.time()
    fired = False
    while time.time() - t0 < seconds:
        if during and not fired and time.time() - t0 > 0.5:
            during()
            fired = True
        st, _, _, dt = one_request(port, timeout=10)
        out.append((round(time.time() - t0, 2), st, round(dt, 3)))
        time.sleep(0.02)
    return out


def timeline(samples):
    """Runs of the same status: `200 x25 (0.0-0.5s), 502 x90 (0.5-2.5s), ...`."""
    runs = []
    for t, st, _ in samples:
        if runs and runs[-1][0] == st:
            runs[-1][1] += 1
            runs[-1][3] = t
        else:
            runs.append([st, 1, t, t])
    return ", ".join(f"{st} x{n} ({a:.1f}-{b:.1f}s)" for st, n, a, b in runs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="pingora", choices=["pingora", "nginx", "haproxy"])
    ap.add_argument("--binary", default="target/release/pingora")
    args = ap.parse_args()
    oport = servers.free_port()
    extra = ""
    srv = servers.start(args.server, binary=args.binary, origin=f"127.0.0.1:{oport}")
    print(f"{args.server} in front of a faulty origin:")
    try:
        # killed and restarted
        o = start_origin("normal", oport)
        state = {"o": o}
        def kill_and_restart():
            state["o"].kill()
            state["o"].wait()
            state["killed_at"] = time.time()
        samples = []
        t_start = time.time()
        samples += steady(srv.port, 0.6, during=kill_and_restart)
        samples += [(round(t + 0.6, 2), s, d) for t, s, d in steady(srv.port, 2.0)]
        state["o"] = start_origin("normal", oport)
        restarted = time.time()
        after = steady(srv.port, 2.0)
        first_ok = next((t for t, s, _ in after if s == "200"), None)
        print(f"  killed-restarted: {timeline(samples + [(round(t + 2.6, 2), s, d) for t, s, d in after])}; "
              f"first 200 {first_ok}s after the restart")
        # stopped for 3 s
        import threading
        def stop_origin():
            os.kill(state["o"].pid, signal.SIGSTOP)
            threading.Timer(3.0, os.kill, (state["o"].pid, signal.SIGCONT)).start()
        samples = steady(srv.port, 4.5, during=stop_origin)
        print(f"  stopped-3s (SIGSTOP at 0.5 s, SIGCONT at 3.5 s): {timeline(samples)}; "
              f"slowest request {max(d for _, _, d in samples):.1f}s")
        state["o"].kill()
        state["o"].wait()
        for mode, name in [("never", "never-answers"), ("garbage", "garbage-status"),
                           ("midbody", "closes-mid-body"), ("chunkcut", "chunked-cut")]:
            o = start_origin(mode, oport)
            st, size, complete, dt = one_request(srv.port, timeout=30)
            o.kill()
            o.wait()
            o = start_origin("normal", oport)
            ok = one_request(srv.port)[0]
            o.kill()
            o.wait()
            shape = ("complete" if complete else "TRUNCATED (closed before the end)")
            print(f"  {name}: {st} after {dt:.2f}s, {size} body bytes, {shape}; next request {ok}")
    finally:
        srv.stop()
        try:
            state["o"].kill()
        except Exception:
            pass


if __name__ == "__main__":
    main()
