"""A real ComfyUI server for the node tests, started once per session.

The ComfyUI environment (ComfyUI 0.3.75 and CPU torch, from the package registry) is built
once by tools/comfy_env.sh outside the checkout and reused (rebuilt when its recipe changes).
The server runs that environment's Python; it sees this checkout's package through
PYTHONPATH, laid out as an install lays it out (``vs_superres.models`` from ``models/``, ...)
with symbolic links, so every run tests the working tree as it is. The pack is linked into
``custom_nodes/`` by ``superres comfyui install``'s own code (vs_superres/cli/comfyui.py).
Tests run the server on one torch thread and compare with the engine on one thread: then
CPU results are bit-identical.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TESTS = HERE.parent
COMFY_ENV = REPO / "tools" / "comfy_env.sh"
EXIT_CANNOT_BUILD = 3
sys.path.insert(0, str(HERE))

from wsclient import WebSocket  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def comfy_env() -> Path:
    """The cached ComfyUI environment (built on first use: about two minutes)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the ComfyUI test environment is built on Linux only")
    r = subprocess.run(["bash", str(COMFY_ENV), "--build-only"], capture_output=True, text=True, timeout=3600)
    if r.returncode == EXIT_CANNOT_BUILD:
        pytest.skip(r.stderr.strip().splitlines()[-1])
    assert r.returncode == 0, r.stderr[-4000:]
    return Path(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def installed_layout(tmp_path_factory) -> Path:
    """A folder that, on sys.path, gives the checkout's package as an install would."""
    site = tmp_path_factory.mktemp("site")
    pkg = site / "vs_superres"
    pkg.mkdir()
    for entry in (REPO / "vs_superres").iterdir():
        if entry.name != "__pycache__":
            (pkg / entry.name).symlink_to(entry)
    for name, folder in (("models", "models"), ("comfy_nodes", "comfy_nodes"), ("ffmpeg_filter", "ffmpeg_filter")):
        (pkg / name).symlink_to(REPO / folder)
    return site


class ComfyServer:
    """One ComfyUI process with its own base folder (custom_nodes, models, input, output)."""

    def __init__(self, env: Path, base: Path, pythonpath: list[Path], *, wait: bool = True,
                 environ: dict[str, str | None] | None = None):
        """``environ``: variables to set for the server (None: remove it)."""
        self.env, self.base = env, base
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.client_id = uuid.uuid4().hex
        self.log_path = base / "comfyui.log"
        run_env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COV_"))}
        run_env.update(
            PYTHONPATH=os.pathsep.join(str(p) for p in [*pythonpath, env / "standins"]),
            OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1",
            SUPERRES_FAMILIES=os.environ.get("SUPERRES_FAMILIES", os.pathsep.join(["families.temporal_mean", "families.oom_probe"])),
        )
        for key, value in (environ or {}).items():
            if value is None:
                run_env.pop(key, None)
            else:
                run_env[key] = value
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [str(env / "venv" / "bin" / "python"), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
             "--base-directory", str(base), "--disable-auto-launch", "--database-url", "sqlite:///:memory:"],
            cwd=env / "ComfyUI", env=run_env, stdout=self._log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 240) -> None:
        """Until the server answers (``wait=False`` starts several servers side by side)."""
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            try:
                self.get("/system_stats")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        raise TimeoutError(f"ComfyUI did not answer within {timeout} s:\n{self.log()[-4000:]}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    # ---------------------------------------------------------------- HTTP
    def request(self, method: str, path: str, body=None) -> tuple[int, object]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                raw = r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            raw, status = e.read(), e.code
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw

    def get(self, path: str):
        status, body = self.request("GET", path)
        if status != 200:
            raise ConnectionError(f"GET {path}: {status} {body}")
        return body

    def post(self, path: str, body) -> tuple[int, object]:
        return self.request("POST", path, body)

    def upload(self, name: str, data: bytes, *, subfolder: str = "", kind: str = "input") -> dict:
        """POST /upload/image as the frontend does (multipart form): what any client that
        reaches the server can put into its ``input/`` (``output/``, ``temp/``) folder."""
        boundary = uuid.uuid4().hex
        fields = [("type", kind), ("subfolder", subfolder), ("overwrite", "true")]
        body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                        for k, v in fields)
        body += (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        req = urllib.request.Request(self.url + "/upload/image", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    def object_info(self, node: str) -> dict:
        return self.get(f"/object_info/{node}")[node]

    def websocket(self) -> WebSocket:
        ws = WebSocket(f"ws://127.0.0.1:{self.port}/ws?clientId={self.client_id}")
        ws.recv(timeout=10)  # the status greeting
        return ws

    def queue(self, prompt: dict) -> str:
        status, body = self.post("/prompt", {"prompt": prompt, "client_id": self.client_id})
        assert status == 200, body
        return body["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 300) -> dict:
        """The prompt's /history entry once it is done."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hist = self.get(f"/history/{prompt_id}")
            if prompt_id in hist:  # written when the prompt ends: success, error or interrupt
                return hist[prompt_id]
            time.sleep(0.2)
        raise TimeoutError(f"prompt {prompt_id} not done within {timeout} s:\n{self.log()[-3000:]}")

    def run(self, prompt: dict, timeout: float = 300) -> dict:
        return self.wait(self.queue(prompt), timeout)

    def output(self, name: str) -> Path:
        return self.base / "output" / name

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


def error_message(history: dict) -> str:
    """The execution_error message of a failed prompt (what ComfyUI's error panel shows)."""
    for kind, data in history["status"]["messages"]:
        if kind == "execution_error":
            return f"{data['exception_type']}: {data['exception_message']}"
    raise AssertionError(f"no execution_error in {history['status']}")


def make_base(root: Path, packs: dict[str, str | Path]) -> Path:
    """A ComfyUI base folder whose custom_nodes/ holds ``packs`` ({name: source text or folder})."""
    for sub in ("custom_nodes", "models/superres", "models/upscale_models", "input", "output", "user", "temp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for name, source in packs.items():
        if isinstance(source, Path):
            shutil.copytree(source, root / "custom_nodes" / name)
        else:
            (root / "custom_nodes" / name).mkdir()
            (root / "custom_nodes" / name / "__init__.py").write_text(source)
    return root


@pytest.fixture(scope="session")
def comfy(comfy_env, installed_layout, tiny_ditn_path, tmp_path_factory):
    """The session's server: the pack linked by `superres comfyui install` (V1), the probe
    nodes, and the tiny DITN checkpoint in models/superres."""
    from vs_superres.cli.comfyui import install

    base = make_base(tmp_path_factory.mktemp("comfy_v1"), {"superres_probe": HERE / "probe_pack"})
    install(base, api="v1")
    shutil.copy(tiny_ditn_path, base / "models" / "superres" / "tiny_ditn.pth")
    server = ComfyServer(comfy_env, base, [installed_layout, TESTS])
    yield server
    server.stop()


def stock_server(comfy_env, installed_layout, root: Path, files: dict[str, Path] | None = None) -> ComfyServer:
    """A server for a stock ComfyUI layout in ``root`` (a test's own tmp_path): the pack, the
    probe nodes, ``files`` ({path under the base: source}) copied in, and no weights anywhere
    but in its own folders ($SUPERRES_WEIGHTS unset, an empty user cache)."""
    from vs_superres.cli.comfyui import install

    base = make_base(root / "comfyui", {"superres_probe": HERE / "probe_pack"})
    install(base, api="v1")
    for rel, source in (files or {}).items():
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, base / rel)
    (root / "cache").mkdir(exist_ok=True)
    return ComfyServer(comfy_env, base, [installed_layout, TESTS],
                       environ={"SUPERRES_WEIGHTS": None, "XDG_CACHE_HOME": str(root / "cache")})
