"""A minimal WebSocket echo origin and WebSocket clients for the soak scripts (RFC 6455,
text frames up to 125 bytes, loopback only). Threads, standard library only."""
import base64, hashlib, os, socket, struct, threading, time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def read_frame(s):
    """(opcode, payload) of the next frame."""
    b0, b1 = _recv_exact(s, 2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", _recv_exact(s, 2))[0]
    elif n == 127:
        n = struct.unpack(">Q", _recv_exact(s, 8))[0]
    mask = _recv_exact(s, 4) if b1 & 0x80 else None
    data = _recv_exact(s, n)
    if mask:
        data = bytes(c ^ mask[i % 4] for i, c in enumerate(data))
    return b0 & 0x0F, data


def frame(opcode, payload, masked):
    head = bytes([0x80 | opcode])
    if masked:
        key = os.urandom(4)
        body = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        return head + bytes([0x80 | len(payload)]) + key + body
    return head + bytes([len(payload)]) + payload


class EchoOrigin:
    """Accepts WebSocket upgrades and echoes text frames; answers plain requests `ok`."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = c.recv(4096)
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                key = None
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"sec-websocket-key":
                        key = v.strip()
                if key is None:
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    continue
                accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
                c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
                while True:
                    op, data = read_frame(c)
                    if op == 8:
                        c.sendall(frame(8, data[:2], False))
                        return
                    if op == 1:
                        c.sendall(frame(1, data, False))
        except (OSError, ConnectionError):
            pass
        finally:
            c.close()

    def stop(self):
        self.stopping = True
        self.sock.close()


class Clients:
    """`n` WebSocket clients through the proxy at `port`, each sending a numbered text
    message every `interval` seconds and checking the echo. A client whose connection
    ends reconnects. `stop()` returns a summary: messages echoed, wrong echoes,
    connections that ended with a close frame, and those that ended without one."""

    def __init__(self, port, n, interval=0.05):
        self.port, self.interval = port, interval
        self.lock = threading.Lock()
        self.stats = {"echoed": 0, "wrong": 0, "closed_with_frame": 0, "dropped": 0,
                      "failed_handshakes": 0, "connections": 0}
        self.stopping = False
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(n)]
        for t in self.threads:
            t.start()

    def _count(self, key, n=1):
        with self.lock:
            self.stats[key] += n

    def _connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        key = base64.b64encode(os.urandom(16))
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: soak\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                  b"Sec-WebSocket-Key: " + key + b"\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(1)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(head.split(b"\r\n")[0].decode(errors="replace"))
        return s

    def _run(self, i):
        n = 0
        while not self.stopping:
            try:
                s = self._connect()
            except (OSError, ConnectionError):
                self._count("failed_handshakes")
                time.sleep(0.05)
                continue
            self._count("connections")
            try:
                while not self.stopping:
                    msg = f"{i}:{n}".encode()
                    n += 1
                    s.sendall(frame(1, msg, True))
                    op, data = read_frame(s)
                    if op == 8:
                        self._count("closed_with_frame")
                        break
                    self._count("echoed" if data == msg else "wrong")
                    time.sleep(self.interval)
                else:
                    s.sendall(frame(8, b"\x03\xe8", True))
            except (OSError, ConnectionError):
                self._count("dropped")
            finally:
                s.close()

    def stop(self):
        self.stopping = True
        for t in self.threads:
            t.join(timeout=10)
        return dict(self.stats)
