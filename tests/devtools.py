"""Headless Chromium driven through the DevTools protocol, for the tests that look at a page
as a user does (ComfyUI's canvas, the compare report). Chromium is the system's (installed with
apt-get where the tests run as root and it is missing)."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
from PIL import Image

from wsclient import WebSocket


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return str(shutil.which(name))
    if os.geteuid() == 0 and shutil.which("apt-get"):
        r = subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], capture_output=True, text=True, timeout=900,
                           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if r.returncode == 0 and shutil.which("chromium"):
            return str(shutil.which("chromium"))
    pytest.skip("no Chromium here and `apt-get install chromium` was not possible")


class DevTools:
    """One page: ``call`` a protocol method, evaluate ``js``, wait for a condition, move the
    mouse, take a screenshot."""

    def __init__(self, ws_url: str):
        self.ws = WebSocket(ws_url)
        self.next_id = 0

    def call(self, method: str, timeout: float = 60, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            if isinstance(m, str):
                msg = json.loads(m)
                if msg.get("id") == self.next_id:
                    if "error" in msg:
                        raise RuntimeError(f"{method}: {msg['error']}")
                    return msg["result"]
        raise TimeoutError(method)

    def js(self, expression: str, timeout: float = 60):
        r = self.call("Runtime.evaluate", timeout=timeout, expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression[:80]}...: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 90, poll: float = 0.25):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(poll)
        raise TimeoutError(f"never true: {expression}")

    def mouse(self, kind: str, x: float, y: float) -> None:
        self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                  buttons=0 if kind == "mouseReleased" else 1, clickCount=1)

    def shot(self, clip: dict | None = None) -> Image.Image:
        params = {"format": "png", "captureBeyondViewport": clip is None}
        if clip is not None:
            params["clip"] = {**clip, "scale": 1}
        data = self.call("Page.captureScreenshot", **params)["data"]
        return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")


@contextlib.contextmanager
def open_browser(profile: Path, window: str = "1400,1000", *extra: str) -> Iterator[DevTools]:
    """Headless Chromium with its own profile folder; yields its first page; stops it after."""
    proc = subprocess.Popen([chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             "--remote-debugging-port=0", f"--user-data-dir={profile}", f"--window-size={window}",
                             *extra, "about:blank"], stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            m = re.search(r"DevTools listening on ws://127.0.0.1:(\d+)/", proc.stderr.readline())
            port = int(m.group(1)) if m else None
        assert port, "Chromium did not open its DevTools port"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            target = next(t for t in json.load(r) if t["type"] == "page")
        yield DevTools(target["webSocketDebuggerUrl"])
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
