"""A minimal WebSocket client (RFC 6455, text frames, client masking) on the standard library.

ComfyUI's ``/ws`` and Chromium's DevTools endpoint are both plain WebSockets; the test
environment has no WebSocket package, and this is all the tests need from one.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
from urllib.parse import urlsplit


class WebSocket:
    def __init__(self, url: str, timeout: float = 30.0):
        u = urlsplit(url)
        self.sock = socket.create_connection((u.hostname, u.port or 80), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        path = u.path + (f"?{u.query}" if u.query else "")
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("WebSocket handshake: connection closed")
            head += chunk
        status, _, self._buf = head.partition(b"\r\n\r\n")
        if b" 101 " not in status.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"WebSocket handshake refused: {status[:200]!r}")

    def _read(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                raise ConnectionError("WebSocket closed")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def send(self, text: str) -> None:
        data = text.encode()
        head = bytes([0x81])
        n = len(data)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv(self, timeout: float | None = None) -> str | bytes | None:
        """The next message (text as str, binary as bytes); None on timeout."""
        self.sock.settimeout(timeout)
        try:
            message = b""
            while True:
                b0, b1 = self._read(2)
                n = b1 & 0x7F
                if n == 126:
                    n = struct.unpack(">H", self._read(2))[0]
                elif n == 127:
                    n = struct.unpack(">Q", self._read(8))[0]
                payload = self._read(n)
                opcode = b0 & 0x0F
                if opcode == 0x9:  # ping
                    continue
                if opcode == 0x8:
                    raise ConnectionError("WebSocket closed by the server")
                message += payload
                if b0 & 0x80:
                    return message.decode() if opcode in (0x1, 0x0) and _is_text(message) else message
        except socket.timeout:
            return None

    def json_messages(self, until, timeout: float):
        """Decoded JSON messages until ``until(message)`` is true; returns all of them."""
        out, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.recv(timeout=max(0.1, deadline - time.monotonic()))
            if isinstance(m, str):
                msg = json.loads(m)
                out.append(msg)
                if until(msg):
                    return out
        raise TimeoutError(f"no closing message within {timeout} s; got {[m.get('type') for m in out][-20:]}")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _is_text(data: bytes) -> bool:
    try:
        data.decode()
        return True
    except UnicodeDecodeError:
        return False
