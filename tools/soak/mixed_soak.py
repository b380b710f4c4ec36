#!/usr/bin/env python3
"""A mixed soak: memory and descriptors over minutes of varied traffic.

    tools/soak/mixed_soak.py [--minutes 10] [--binary target/release/pingora]

pingora in front of an nginx origin takes, all at once for MINUTES: HTTP/1.1 keep-alive
small responses (wrk, 20 connections), 1 MiB responses (wrk, 4 connections), HTTP/2
cleartext streams (h2load, 4 connections x 10 streams), requests the origin answers 500
and requests to an upstream whose peer is down (502). RSS and open fds are sampled
every 5 s; printed: the samples, the totals of each load, and the least-squares slope of
RSS and fds over the last half (KiB/min, fds/min). Loopback only; bounded by MINUTES.
"""
import argparse, os, re, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servers  # noqa: E402


def slope(points):
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--binary", default="target/release/pingora")
    args = ap.parse_args()
    origin = servers.start_nginx_origin()
    dead = servers.free_port()
    routes = ("      - { match: { path_prefix: /dead }, upstream: dead }\n")
    ups = (f"      dead:\n        peers: [\"127.0.0.1:{dead}\"]\n        connect_timeout_ms: 200\n")
    srv = servers.start("pingora", binary=args.binary, origin=f"127.0.0.1:{origin.port}",
                        workers=2, extra_routes=routes, extra_upstreams=ups)
    secs = int(args.minutes * 60)
    base = f"http://127.0.0.1:{srv.port}"
    loads = {
        "h1 small": ["wrk", "-t1", "-c20", f"-d{secs}s", f"{base}/"],
        "h1 1MiB": ["wrk", "-t1", "-c4", f"-d{secs}s", f"{base}/big"],
        "h1 origin 500": ["wrk", "-t1", "-c2", f"-d{secs}s", f"{base}/status500"],
        "h1 dead upstream 502": ["wrk", "-t1", "-c1", f"-d{secs}s", f"{base}/dead"],
        "h2c": ["h2load", "-c4", "-m10", "-t1", "-D", str(secs), f"{base}/"],
    }
    procs = {k: subprocess.Popen(v, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for k, v in loads.items()}
    samples = []
    t0 = time.time()
    try:
        while time.time() - t0 < secs + 2:
            samples.append((time.time() - t0, srv.rss_kib(), srv.fds()))
            time.sleep(5)
        outs = {k: p.communicate(timeout=120)[0] for k, p in procs.items()}
    finally:
        for p in procs.values():
            p.kill()
    print(f"pingora mixed soak, {args.minutes} min:")
    for k, out in outs.items():
        if k == "h2c":
            m = re.search(r"requests: .*", out)
            print(f"  {k}: {m.group(0) if m else out[-300:]}")
        else:
            total = re.search(r"(\d+) requests in", out)
            non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            errs = re.search(r"Socket errors: .*", out)
            print(f"  {k}: {total.group(1) if total else '?'} requests, "
                  f"non-2xx {non2xx.group(1) if non2xx else 0}, {errs.group(0) if errs else 'no socket errors'}")
    half = [s for s in samples if s[0] >= secs / 2]
    rss_slope = slope([(t / 60, r) for t, r, _ in half])
    fd_slope = slope([(t / 60, f) for t, _, f in half])
    print("  samples (s, RSS MiB, fds): " + ", ".join(
        f"{t:.0f}:{r / 1024:.1f}:{f}" for t, r, f in samples[:: max(1, len(samples) // 24)]))
    print(f"  RSS start {samples[0][1] / 1024:.1f} MiB, max {max(r for _, r, _ in samples) / 1024:.1f} MiB, "
          f"end {samples[-1][1] / 1024:.1f} MiB; slope over the last half {rss_slope:+.1f} KiB/min; "
          f"fds slope {fd_slope:+.2f}/min")
    srv.stop()
    origin.stop()


if __name__ == "__main__":
    main()
