"""Weight resolution, sha256 checks, downloads over real HTTP (loopback), safe loading."""

import functools
import hashlib
import http.server
import os
import pickle
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from vs_superres.numerics import checkpoints
from vs_superres.runtime import weights
from vs_superres.contracts.errors import WeightsError
from vs_superres.contracts.descriptor import WeightFile


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No $SUPERRES_WEIGHTS, an empty user cache."""
    monkeypatch.delenv("SUPERRES_WEIGHTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def test_missing_file_error_names_file_sha_places_and_command(isolated):
    wf = WeightFile("ditn/NOPE_x4.pth", "ab" * 32, url="http://127.0.0.1:9/x")
    with pytest.raises(WeightsError) as e:
        weights.resolve(wf, model_name="ditn-nope")
    msg = str(e.value)
    assert "ditn/NOPE_x4.pth" in msg and "ab" * 32 in msg
    assert str(isolated / "cache" / "vs-superres" / "ditn" / "NOPE_x4.pth") in msg
    assert "superres models download ditn-nope" in msg and "SUPERRES_WEIGHTS" in msg


def test_search_order_env_then_cache(isolated, monkeypatch):
    data = b"weights!"
    wf = WeightFile("fam/w.bin", _sha(data))
    cache = isolated / "cache" / "vs-superres" / "fam"
    cache.mkdir(parents=True)
    (cache / "w.bin").write_bytes(data)
    assert weights.resolve(wf) == cache / "w.bin"
    env = isolated / "env"
    (env / "fam").mkdir(parents=True)
    (env / "fam" / "w.bin").write_bytes(data)
    monkeypatch.setenv("SUPERRES_WEIGHTS", str(env))
    assert weights.resolve(wf) == env / "fam" / "w.bin"
    explicit = isolated / "mine.bin"
    explicit.write_bytes(data)
    assert weights.resolve(wf, explicit) == explicit


def test_sha256_mismatch_is_refused(isolated, monkeypatch):
    (isolated / "env" / "fam").mkdir(parents=True)
    p = isolated / "env" / "fam" / "w.bin"
    p.write_bytes(b"tampered")
    monkeypatch.setenv("SUPERRES_WEIGHTS", str(isolated / "env"))
    wf = WeightFile("fam/w.bin", _sha(b"original"))
    with pytest.raises(WeightsError, match="has sha256 .* should have .*corrupt"):
        weights.resolve(wf)
    # an explicit path is the user's choice: not held to the registry's hash
    assert weights.resolve(wf, p) == p


class _Server:
    def __init__(self, root: Path):
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
        handler.log_message = lambda *a, **k: None
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "srv"
    root.mkdir()
    s = _Server(root)
    yield s, root
    s.close()


def test_download_verifies_and_renames(isolated, server):
    srv, root = server
    data = os.urandom(3 << 20)
    (root / "w.pth").write_bytes(data)
    wf = WeightFile("fam/w.pth", _sha(data), url=f"{srv.url}/w.pth")
    seen = []
    path = weights.download(wf, progress=lambda p: seen.append((p.done, p.total)))
    assert path.read_bytes() == data
    assert seen[-1] == (len(data), len(data))
    assert weights.resolve(wf) == path
    assert not list(path.parent.glob("*.part"))


def test_download_with_wrong_sha_leaves_nothing(isolated, server):
    srv, root = server
    (root / "w.pth").write_bytes(b"not what the registry expects")
    wf = WeightFile("fam/w.pth", _sha(b"expected"), url=f"{srv.url}/w.pth")
    with pytest.raises(WeightsError, match="Nothing was saved"):
        weights.download(wf)
    folder = isolated / "cache" / "vs-superres" / "fam"
    assert list(folder.iterdir()) == []


def test_download_offline_names_the_file_and_where_to_put_it(isolated):
    wf = WeightFile("fam/w.pth", "cd" * 32, url="http://127.0.0.1:9/w.pth")  # port 9: refused
    with pytest.raises(WeightsError, match=r"could not download fam/w.pth .*sha256 cdcd"):
        weights.download(wf)


@pytest.mark.parametrize("wrap", ["plain", "params", "params_ema", "state_dict", "model", "module"])
def test_wrapped_and_prefixed_state_dicts_are_unwrapped(tmp_path, wrap):
    sd = {"a.weight": torch.ones(2, 2), "b.bias": torch.zeros(3)}
    obj = {
        "plain": sd,
        "params": {"params": sd},
        "params_ema": {"params_ema": sd, "params": {"a.weight": torch.zeros(2, 2)}},
        "state_dict": {"state_dict": sd, "epoch": 3},
        "model": {"model": sd, "optimizer": {}},
        "module": {f"module.{k}": v for k, v in sd.items()},
    }[wrap]
    p = tmp_path / "ck.pth"
    torch.save(obj, p)
    got = checkpoints.load_state_dict(p)
    assert sorted(got) == sorted(sd)
    torch.testing.assert_close(got["a.weight"], torch.ones(2, 2))


def test_safetensors_loads(tmp_path):
    p = tmp_path / "ck.safetensors"
    save_file({"x": torch.arange(4.0)}, str(p))
    torch.testing.assert_close(checkpoints.load_state_dict(p)["x"], torch.arange(4.0))


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_pickle_with_code_is_refused_in_our_words(tmp_path, writer):
    p = tmp_path / "evil.pth"
    marker = tmp_path / "ran"
    payload = type("Payload", (), {"__reduce__": lambda self: (os.system, (f"touch {marker}",))})()
    if writer == "pickle":
        with open(p, "wb") as f:
            pickle.dump({"w": payload}, f)
    else:
        torch.save({"w": torch.zeros(1), "x": payload}, p)
    with pytest.raises(WeightsError) as err:
        checkpoints.load_state_dict(p)
    msg = str(err.value)
    assert "was refused and nothing in it was run" in msg and "never runs code from checkpoints" in msg
    assert "asks for `posix.system`" in msg or "asks for `os.system`" in msg
    assert ".safetensors" in msg and "torch.save(model.state_dict())" in msg
    # PyTorch's own advice (weights_only=False) would run the payload: never passed on.
    assert "weights_only` set to False" not in msg and "weights_only=False" not in msg
    assert not marker.exists()


def test_corrupt_and_non_checkpoint_files(tmp_path):
    good = tmp_path / "good.pth"
    torch.save({"w": torch.ones(1000)}, good)
    broken = tmp_path / "broken.pth"
    broken.write_bytes(good.read_bytes()[:300])
    with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint"):
        checkpoints.load_state_dict(broken)
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    with pytest.raises(WeightsError):
        checkpoints.load_state_dict(text)
    numbers = tmp_path / "numbers.pth"
    torch.save([1, 2, 3], numbers)
    with pytest.raises(WeightsError, match="holds no state dict"):
        checkpoints.load_state_dict(numbers)
    bad_st = tmp_path / "x.safetensors"
    bad_st.write_bytes(b"\x00" * 20)
    with pytest.raises(WeightsError, match="not a readable safetensors"):
        checkpoints.load_state_dict(bad_st)


def test_one_loader_for_tensors_metadata_and_hints(tmp_path):
    st = tmp_path / "m.safetensors"
    save_file({"b": torch.ones(2), "a": torch.zeros(3)}, str(st), metadata={"format": "x", "rank": "4"})
    tensors, metadata = checkpoints.read_safetensors(st)
    assert metadata == {"format": "x", "rank": "4"} and sorted(tensors) == ["a", "b"]
    torch.testing.assert_close(checkpoints.load_tensors(st)["b"], torch.ones(2))
    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.ones(1)}, str(plain))
    assert checkpoints.read_safetensors(plain)[1] == {}
    # A flat torch file keeps its keys as stored (no wrapper or module. stripping).
    flat = tmp_path / "flat.bin"
    torch.save({"module.x": torch.ones(1)}, flat)
    assert list(checkpoints.load_tensors(flat)) == ["module.x"]
    assert list(checkpoints.load_state_dict(flat)) == ["x"]
    nested = tmp_path / "nested.pt"
    torch.save({"state_dict": {"x": torch.ones(1)}, "epoch": 3}, nested)
    with pytest.raises(WeightsError, match="does not hold a flat mapping of names to tensors"):
        checkpoints.load_tensors(nested)
    # The caller's hint follows every message; the file is always named.
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    for path, text in ((empty, "not a readable PyTorch checkpoint"), (tmp_path / "absent.pth", "does not exist"),
                       (tmp_path, "is a folder, not a checkpoint file")):
        with pytest.raises(WeightsError, match=f"{text}.*Get it from the family's page.") as err:
            checkpoints.load_checkpoint(path, hint="Get it from the family's page.")
        assert str(path) in str(err.value)
    numbers = tmp_path / "numbers.pth"
    torch.save([1, 2, 3], numbers)
    with pytest.raises(WeightsError, match=r"numbers.pth'?: the checkpoint holds no state dict.*Convert it"):
        checkpoints.load_state_dict(numbers, hint="Convert it.")


# ------------------------------------------------------------------ folders from the Hugging Face Hub


def _base_folder(folder: Path) -> Path:
    """The structure the UltraVSR base declares (no weights: only the runtime's checks run)."""
    for sub in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        (folder / sub).mkdir(parents=True)
    for sub in ("unet", "vae"):
        (folder / sub / "config.json").write_text("{}")
    return folder


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    """``huggingface_hub.snapshot_download`` answering from ``cached`` (repo -> folder) only."""
    huggingface_hub = pytest.importorskip("huggingface_hub")
    calls, cached = [], {}

    def snapshot_download(repo, *, allow_patterns=None, local_files_only=False):
        calls.append((repo, tuple(allow_patterns or ()), local_files_only))
        if repo not in cached:
            raise huggingface_hub.errors.LocalEntryNotFoundError(f"{repo} is not cached")
        return str(cached[repo])

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return calls, cached


def test_missing_base_model_errors(isolated):
    """The family declares its base folder (``HubSnapshot``); the runtime finds and checks it."""
    from vs_superres.models.ultravsr.family import BASE

    with pytest.raises(WeightsError, match="stable-diffusion-2-1-base") as err:
        weights.resolve_snapshot(BASE, isolated / "nowhere")
    assert str(err.value).startswith(f"base model folder {isolated / 'nowhere'} does not exist.")
    assert "hf download stabilityai/stable-diffusion-2-1-base" in str(err.value) and err.value.option == "base"
    partial = isolated / "partial"
    (partial / "unet").mkdir(parents=True)
    with pytest.raises(WeightsError, match=r"lacks \['vae', 'text_encoder', 'tokenizer', 'scheduler', 'unet/config.json'\]"):
        weights.resolve_snapshot(BASE, partial)
    with pytest.raises(WeightsError, match="not a local folder.*allow_download=True"):
        weights.resolve_snapshot(BASE, "nobody-here/not-a-model")


def test_base_folder_search_then_hub_cache_then_download(isolated, monkeypatch, fake_hub):
    from vs_superres.models.ultravsr.family import BASE

    calls, cached = fake_hub
    # Nothing given, nothing in the search path, nothing cached: the declared repository is named.
    with pytest.raises(WeightsError, match="^base model 'stabilityai/stable-diffusion-2-1-base' is not a local folder. "
                       r"It is not in the Hugging Face cache, and downloads are off \(allow_download=True turns them on\)"):
        weights.resolve_snapshot(BASE)
    cached[BASE.hub.repo] = _base_folder(isolated / "hf" / "snapshot")
    # Not in the search path: the Hugging Face cache, never the network unless allowed.
    assert weights.resolve_snapshot(BASE) == isolated / "hf" / "snapshot"
    assert calls[-1] == (BASE.hub.repo, BASE.hub.patterns, True)
    assert weights.resolve_snapshot(BASE, allow_download=True) == isolated / "hf" / "snapshot"
    assert calls[-1][2] is False
    # A hub id given as the option.
    cached["someone/sd21"] = cached[BASE.hub.repo]
    assert weights.resolve_snapshot(BASE, "someone/sd21") == isolated / "hf" / "snapshot"
    # The search path comes first, and an explicit folder before everything.
    env = isolated / "env"
    _base_folder(env / BASE.relpath)
    monkeypatch.setenv("SUPERRES_WEIGHTS", str(env))
    n = len(calls)
    assert weights.resolve_snapshot(BASE) == env / BASE.relpath
    mine = _base_folder(isolated / "mine")
    assert weights.resolve_snapshot(BASE, mine) == mine and len(calls) == n


def test_load_request_gets_the_base_folder_and_no_hub_options(isolated, fake_hub):
    """``resolve_weights`` resolves a hub folder whatever its option says; the family only reads it."""
    from vs_superres.models.ultravsr.family import BASE, MODEL
    from vs_superres.runtime.loading import resolve_weights

    calls, cached = fake_hub
    cached["someone/sd21"] = _base_folder(isolated / "snap")
    ckpt = isolated / "UltraVSR.pkl"
    ckpt.write_bytes(b"x")
    found = resolve_weights(MODEL, [], {"checkpoint": str(ckpt), "base": "someone/sd21", "allow_download": True})
    assert found[BASE.relpath] == isolated / "snap" and calls[-1][2] is False
    assert found["ultravsr/UltraVSR.pkl"] is None  # the checkpoint option is the family's
