#!/usr/bin/env python3
"""CPU per MiB and ratio of response compression: this proxy against nginx's gzip.

    tools/bench-compression.py [--bin target/release/pingora] [--rounds 3] [--mib 96]

Loopback only. Starts (and stops) three processes, each single-threaded:
- an origin nginx serving two files from a temporary directory without compression:
  `text.txt` (Rust and Markdown sources of the local cargo registry, a realistic text)
  and `data.json` (generated records);
- a "gzip" nginx serving the same files itself with `gzip on; gzip_comp_level N`;
- pingora (one thread) in front of the origin, with one route per algorithm.

For each case the files are fetched (with curl, one request after another, the body
thrown away) until `--mib` MiB of uncompressed body went through, and the CPU time
(user + system, from /proc) of the process under test is read before and after. The
same is done without `Accept-Encoding`: the difference is what compression costs. The
figures printed are medians over `--rounds`; the table goes in docs/benchmarks.md.
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
MIB = 1 << 20


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def cpu_seconds(pid):
    """User + system CPU of `pid` and its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def make_corpus(d: Path, mib: int):
    text = d / "text.txt"
    registry = Path.home() / ".cargo/registry/src"
    with text.open("wb") as out:
        size = 0
        for path in sorted(registry.rglob("*")):
            if path.suffix in (".rs", ".md") and path.is_file():
                data = path.read_bytes()
                out.write(data)
                size += len(data)
                if size >= mib * MIB:
                    break
    rng = random.Random(7)
    words = ["alpha", "beta", "gamma", "delta", "omega", "proxy", "cache", "route"]
    records = []
    size = 0
    while size < mib * MIB:
        r = {
            "id": len(records),
            "name": f"{rng.choice(words)} {rng.choice(words)} {rng.randint(1, 999)}",
            "price": round(rng.uniform(1, 500), 2),
            "tags": rng.sample(words, 3),
            "active": rng.random() < 0.7,
            "created": f"2026-{rng.randint(1, 12):02}-{rng.randint(1, 28):02}T{rng.randint(0, 23):02}:00:00Z",
        }
        line = json.dumps(r)
        records.append(line)
        size += len(line) + 2
    (d / "data.json").write_text("[" + ",\n".join(records) + "]")


def nginx(d: Path, name: str, port: int, gzip_level):
    gzip = (
        f"gzip on; gzip_comp_level {gzip_level}; gzip_types *; gzip_min_length 0;"
        if gzip_level
        else "gzip off;"
    )
    conf = d / f"{name}.conf"
    conf.write_text(
        f"""daemon off; master_process off; worker_processes 1; pid {d}/{name}.pid;
error_log {d}/{name}.err warn;
events {{ worker_connections 256; }}
http {{
  access_log off; sendfile on; tcp_nopush on; keepalive_requests 100000;
  types {{ text/plain txt; application/json json; }}
  client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;
  uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
  server {{ listen 127.0.0.1:{port}; root {d}; {gzip} }}
}}
"""
    )
    p = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(d)], stderr=subprocess.DEVNULL)
    wait_port(port)
    return p


def pingora(binary: str, d: Path, port: int, origin: int, gzip_level: int):
    routes = ""
    for prefix, comp in [
        ("/gzip/", f"{{ algorithms: [gzip], level: {{ gzip: {gzip_level} }}, types: [\"*/*\"], min_bytes: 0 }}"),
        ("/gzip1/", "{ algorithms: [gzip], level: { gzip: 1 }, types: [\"*/*\"], min_bytes: 0 }"),
        ("/br/", "{ algorithms: [br], types: [\"*/*\"], min_bytes: 0 }"),
        ("/zstd/", "{ algorithms: [zstd], types: [\"*/*\"], min_bytes: 0 }"),
        ("/id/", "{ algorithms: [] }"),
    ]:
        routes += (
            f"      - match: {{ path_prefix: {prefix} }}\n        upstream: origin\n"
            f"        rewrite: {{ strip_prefix: {prefix[:-1]} }}\n        compression: {comp}\n"
        )
    conf = d / "pingora.yaml"
    conf.write_text(
        f"""version: 1
threads: 1
pid_file: {d}/pingora.pid
upgrade_sock: {d}/upgrade.sock
error_log: {d}/pingora.log
services:
  - name: bench
    threads: 1
    listeners: [ {{ addr: "127.0.0.1:{port}" }} ]
    routes:
{routes}    upstreams:
      origin:
        peers: ["127.0.0.1:{origin}"]
"""
    )
    p = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
    wait_port(port)
    return p


def fetch(port: int, path: str, size: int, mib: int, accept):
    """Fetches `path` until `mib` MiB of uncompressed body went through; returns the
    bytes received."""
    n = max(1, (mib * MIB) // size)
    url = f"http://127.0.0.1:{port}{path}"
    args = ["curl", "-s", "-w", "%{size_download}\\n"]
    if accept:
        args += ["-H", f"Accept-Encoding: {accept}"]
    for _ in range(n):
        args += ["-o", "/dev/null", url]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return sum(int(x) for x in out.split()), n * size


def measure(pid, port, path, size, mib, accept):
    before = cpu_seconds(pid)
    received, sent = fetch(port, path, size, mib, accept)
    cpu = cpu_seconds(pid) - before
    return cpu, received, sent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/pingora")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mib", type=int, default=96, help="uncompressed MiB per case and round")
    ap.add_argument("--level", type=int, default=6, help="gzip level for both")
    args = ap.parse_args()
    if not shutil.which("nginx") or not shutil.which("curl"):
        raise SystemExit("needs nginx and curl (Debian packages)")
    d = Path(tempfile.mkdtemp(prefix="bench-compression-"))
    (d / "tmp").mkdir()
    make_corpus(d, 8)
    sizes = {f: (d / f).stat().st_size for f in ("text.txt", "data.json")}
    o_port, g_port, p_port = free_port(), free_port(), free_port()
    procs = [nginx(d, "origin", o_port, None)]
    try:
        procs.append(nginx(d, "gzip", g_port, args.level))
        procs.append(pingora(args.bin, d, p_port, o_port, args.level))
        nginx_pid, pingora_pid = procs[1].pid, procs[2].pid
        cases = [
            ("nginx", f"gzip {args.level}", nginx_pid, g_port, "/", "gzip"),
            ("nginx", "identity", nginx_pid, g_port, "/", None),
            ("pingora", f"gzip {args.level}", pingora_pid, p_port, "/gzip/", "gzip"),
            ("pingora", "gzip 1", pingora_pid, p_port, "/gzip1/", "gzip"),
            ("pingora", "br 4", pingora_pid, p_port, "/br/", "br"),
            ("pingora", "zstd 3", pingora_pid, p_port, "/zstd/", "zstd"),
            ("pingora", "identity", pingora_pid, p_port, "/id/", None),
        ]
        results = {}
        for f, size in sizes.items():
            for _ in range(args.rounds):
                for who, case, pid, port, prefix, accept in cases:
                    cpu, received, sent = measure(pid, port, prefix + f, size, args.mib, accept)
                    results.setdefault((f, who, case), []).append(
                        (cpu / (sent / MIB) * 1000, received / sent)
                    )
        print(f"files: text.txt {sizes['text.txt']} B, data.json {sizes['data.json']} B; "
              f"{args.mib} MiB per case and round, median of {args.rounds} rounds")
        print("| file | server | encoding | CPU ms per MiB | of it compression | ratio (out/in) |")
        print("|---|---|---|--:|--:|--:|")
        for f in sizes:
            base = {}
            for who, case, *_ in cases:
                if case == "identity":
                    base[who] = statistics.median(r[0] for r in results[(f, who, case)])
            for who, case, *_ in cases:
                ms = statistics.median(r[0] for r in results[(f, who, case)])
                ratio = statistics.median(r[1] for r in results[(f, who, case)])
                extra = "" if case == "identity" else f"{ms - base[who]:.1f}"
                print(f"| {f} | {who} | {case} | {ms:.1f} | {extra} | {ratio:.3f} |")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
