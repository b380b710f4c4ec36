#!/usr/bin/env python3
"""Memory per open HTTP/2 stream: RSS while many proxied streams wait for their answer.

    tools/soak/h2_stream_memory.py [--server pingora|nginx] [--binary target/release/pingora]
                                   [--connections 10] [--streams 100] [--hold 4]

An origin (asyncio, HTTP/1.1) holds every request for HOLD seconds before answering.
The server under test proxies h2c to it. h2load opens CONNECTIONS connections with STREAMS
streams each, all at once, so CONNECTIONS x STREAMS streams are open in the server (each
with its upstream HTTP/1.1 connection) while the origin holds them. Printed: the server's
RSS (process tree) before, while they are held, and after; the growth per open stream.
Bounded (one burst), loopback only; everything it starts is stopped at the end.
"""
import argparse, asyncio, os, subprocess, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servers  # noqa: E402


def start_holding_origin(hold):
    """An HTTP/1.1 origin answering every request `ok` after `hold` seconds."""
    port = servers.free_port()
    ready = threading.Event()

    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if not head:
                    break
                await asyncio.sleep(hold)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def run():
        loop = asyncio.new_event_loop()
        srv = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", port,
                                                           backlog=4096))
        ready.set()
        loop.run_until_complete(srv.serve_forever())

    threading.Thread(target=run, daemon=True).start()
    ready.wait(10)
    return port


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="pingora", choices=["pingora", "nginx"])
    ap.add_argument("--binary", default="target/release/pingora")
    ap.add_argument("--connections", type=int, default=10)
    ap.add_argument("--streams", type=int, default=100)
    ap.add_argument("--hold", type=float, default=4.0)
    args = ap.parse_args()
    origin = start_holding_origin(args.hold)
    srv = servers.start(args.server, binary=args.binary, origin=f"127.0.0.1:{origin}",
                        h2c=True)
    url = f"http://127.0.0.1:{srv.port}/"
    # Warm-up: one stream per connection, so the baseline has the runtime and buffers.
    subprocess.run(["h2load", "-c1", "-n1", url], capture_output=True, timeout=30)
    time.sleep(0.5)
    before = srv.rss_kib()
    n = args.connections * args.streams
    load = subprocess.Popen(["h2load", f"-c{args.connections}", f"-m{args.streams}", f"-n{n}",
                             url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(args.hold / 2)
    held = srv.rss_kib()
    out, _ = load.communicate(timeout=args.hold + 60)
    time.sleep(0.5)
    after = srv.rss_kib()
    done = [l for l in out.splitlines() if l.startswith("requests:")]
    print(f"{args.server}: {n} streams open at once ({args.connections} connections x "
          f"{args.streams}); RSS {before / 1024:.1f} MiB before, {held / 1024:.1f} MiB while "
          f"held, {after / 1024:.1f} MiB after: {(held - before) / n:.2f} KiB per open stream "
          f"(with its upstream connection)")
    print("  " + (done[0] if done else out.strip()[-300:]))
    srv.stop()


if __name__ == "__main__":
    main()
