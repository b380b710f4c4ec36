#!/usr/bin/env python3
"""Measures how long a hand-over takes: from the signal (SIGHUP reload or SIGQUIT
upgrade) to the new instance serving, seen as the pid file naming a new live process
that answers a request on the listener.

    tools/soak/handover_time.py target/release/pingora [--rounds 20] [--signal HUP|QUIT]

Starts the binary in the foreground on a free loopback port with a one-service config
that answers by itself (no origin needed), sends the signal ROUNDS times and prints
each time and the median. Loopback only; everything it starts is stopped at the end.
"""
import argparse, os, signal, socket, statistics, subprocess, sys, tempfile, time

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False

def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0

def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--signal", choices=["HUP", "QUIT"], default="HUP")
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="pingora-handover.")
    port = free_port()
    pid_file = os.path.join(d, "pingora.pid")
    conf = os.path.join(d, "conf.yaml")
    with open(conf, "w") as f:
        f.write(f"""version: 1
pid_file: {pid_file}
upgrade_sock: {d}/upgrade.sock
error_log: {d}/error.log
grace_period_seconds: 0
graceful_shutdown_timeout_seconds: 2
services:
  - name: web
    listeners:
      - addr: 127.0.0.1:{port}
    health_path: /healthz
""")
    first = subprocess.Popen([args.binary, "-c", conf], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 20
    while not (read_pid(pid_file) == first.pid and answers(port)):
        if time.time() > deadline:
            sys.exit("the first instance did not start")
        time.sleep(0.01)
    times = []
    current = first.pid
    children = []
    try:
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            if args.signal == "HUP":
                os.kill(current, signal.SIGHUP)
            else:
                os.kill(current, signal.SIGQUIT)
                children.append(subprocess.Popen([args.binary, "-c", conf, "-u"],
                                                 stdout=subprocess.DEVNULL,
                                                 stderr=subprocess.DEVNULL,
                                                 start_new_session=True))
            while True:
                pid = read_pid(pid_file)
                if pid and pid != current and alive(pid) and answers(port):
                    break
                if time.perf_counter() - t0 > 30:
                    sys.exit("no new instance within 30 s")
                time.sleep(0.001)
            times.append(time.perf_counter() - t0)
            old, current = current, pid
            # Wait for the old one to finish draining before the next round.
            end = time.time() + 10
            while alive(old) and time.time() < end:
                try:
                    os.waitpid(old, os.WNOHANG)
                except ChildProcessError:
                    pass
                time.sleep(0.01)
    finally:
        for pid in {current, first.pid}:
            try:
                os.kill(pid, signal.SIGINT)
            except OSError:
                pass
    ms = [t * 1000 for t in times]
    print(" ".join(f"{m:.0f}" for m in ms))
    print(f"SIG{args.signal} to new instance serving: median {statistics.median(ms):.0f} ms, "
          f"max {max(ms):.0f} ms over {len(ms)} rounds")

if __name__ == "__main__":
    main()
