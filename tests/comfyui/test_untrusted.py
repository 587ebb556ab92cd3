"""Prompts are untrusted: ComfyUI answers anyone who reaches its port, and its own
/upload/image puts any bytes into input/ (or output/, temp/). Through the real server:

* every path-typed option a family declares opens files inside ComfyUI's model folders only,
  with one message whether or not the path exists outside (no probing the server's files);
* what /upload/image stores can never be named as a model, a checkpoint or a base folder (a
  deflate-zipped checkpoint inflating ~900:1, a base folder declaring 10^8 timesteps);
* one bad ``.safetensors`` in a model folder never takes the loader or the other models away.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
from PIL import Image

from conftest import error_message
from graphs import image_prompt

from vs_superres.runtime.registry import default_registry

OUTSIDE = "is not inside ComfyUI's model folders"


def _path_options() -> list[tuple[str, str]]:
    """``(a model of the family, option name)`` for every path-typed option a family declares
    for hosts: from the declarations, so an option a family adds is tested by itself."""
    out = []
    for fam in default_registry().families():
        for opt in fam.options.for_hosts():
            if opt.type == "path":
                out.append((fam.default_model, opt.name))
    assert {name for _, name in out} >= {"checkpoint", "base", "clip_iqa", "autoencoder"}, out
    return out


@pytest.fixture(scope="module")
def pixel(comfy):
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(comfy.base / "input" / "untrusted.png")
    return "untrusted.png"


def _refusal(comfy, pixel, model: str, widgets: dict) -> str:
    h = comfy.run(image_prompt(comfy, pixel, model, out="untrusted", loader=widgets))
    assert h["status"]["status_str"] == "error", f"{model} {widgets} ran: {h['status']}"
    return error_message(h)


@pytest.fixture
def links(comfy, tmp_path):
    """Links inside models/superres that lead out of it (to a file and to a missing file), and
    the real file they point at; removed afterwards (the session server's folder is shared)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.pkl"
    secret.write_bytes(b"\x80\x04}\x94.")  # a harmless pickle: {}
    folder = comfy.base / "models" / "superres" / "links-out"
    folder.mkdir()
    (folder / "to-file.pkl").symlink_to(secret)
    (folder / "to-nothing.pkl").symlink_to(outside / "missing.pkl")
    (folder / "to-folder").symlink_to(outside, target_is_directory=True)
    yield secret
    shutil.rmtree(folder)


def test_every_path_option_refuses_paths_outside_the_model_folders(comfy, pixel, links):
    """Absolute paths, ``..`` and links out of models/superres: refused before anything is
    opened, with the same message whether the target exists or not."""
    assert Path("/etc/passwd").is_file() and not Path("/etc/no-such-file").exists()
    secret = str(links)
    values = {
        "absolute, exists": "/etc/passwd",
        "absolute, missing": "/etc/no-such-file",
        "absolute outside file that would load": secret,
        "dot-dot, exists": "../../../../../../../../etc/passwd",
        "dot-dot, missing": "../../../../../../../../etc/no-such-file",
        "link to a file": "links-out/to-file.pkl",
        "link to nothing": "links-out/to-nothing.pkl",
        "through a linked folder": "links-out/to-folder/secret.pkl",
        "absolute through the model folder": str(comfy.base / "models" / "superres" / ".." / ".." / "input" / pixel),
    }
    for model, option in _path_options():
        shapes = set()
        for what, value in values.items():
            msg = _refusal(comfy, pixel, model, {option: value})
            assert f"widget '{option}' = {value!r} {OUTSIDE}" in msg, (model, option, what, msg)
            assert "does not exist" not in msg and "readable" not in msg, (what, msg)
            shapes.add(msg.replace(repr(value), "<value>"))
        assert len(shapes) == 1, shapes  # nothing tells an existing path from a missing one


def test_a_listed_link_out_of_the_model_folders_is_left_out(comfy, links):
    models = comfy.object_info("SuperResModelLoader")["input"]["required"]["model"][0]  # the legacy loader lists every file
    assert not [m for m in models if "links-out" in m], models
    assert "superres/tiny_ditn.pth" in models


def _deflate_bomb(inflated_bytes: int) -> bytes:
    """A torch checkpoint (one zero tensor) re-zipped with deflate: torch.load reads it, and
    it inflates several hundred times over."""
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(inflated_bytes // 4, dtype=torch.float32)}, buf)
    buf.seek(0)
    out = io.BytesIO()
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    return out.getvalue()


def _upload_folder(comfy, folder: Path, under: str, kind: str = "input") -> None:
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        sub = str(Path(under) / path.parent.relative_to(folder))
        comfy.upload(path.name, path.read_bytes(), subfolder=sub, kind=kind)


def test_uploads_can_never_be_named_as_models(comfy, pixel, tmp_path):
    """What /upload/image stores (input/, output/, temp/) cannot be loaded: a working tiny
    UltraVSR release (it would run), a deflate bomb and a base folder declaring 10^8
    timesteps; by relative and absolute paths. The server's memory does not move."""
    from vs_superres.models.ultravsr.tiny import write_tiny_release

    base, ckpt = write_tiny_release(tmp_path / "release")
    for kind in ("input", "output", "temp"):
        _upload_folder(comfy, base, "uvsr/base", kind)
        comfy.upload("UltraVSR.pkl", ckpt.read_bytes(), subfolder="uvsr", kind=kind)
    bomb = _deflate_bomb(256 * 2**20)
    assert len(bomb) < 2**20
    comfy.upload("bomb.pkl", bomb)
    huge = tmp_path / "huge"
    shutil.copytree(base, huge)
    sched = huge / "scheduler" / "scheduler_config.json"
    sched.write_text(re.sub(r'"num_train_timesteps": *\d+', '"num_train_timesteps": 100000000', sched.read_text()))
    assert "100000000" in sched.read_text()
    _upload_folder(comfy, huge, "huge")
    assert (comfy.base / "input" / "uvsr" / "UltraVSR.pkl").is_file() and (comfy.base / "input" / "bomb.pkl").is_file()

    proc = psutil.Process(comfy.proc.pid)
    rss = proc.memory_info().rss
    up = "../.."  # models/superres -> the base folder
    cases = []
    for kind in ("input", "output", "temp"):
        for prefix in (f"{up}/{kind}", str(comfy.base / kind)):
            cases.append({"checkpoint": f"{prefix}/uvsr/UltraVSR.pkl", "base": f"{prefix}/uvsr/base", "strength": 0.5})
    cases += [{"checkpoint": f"{up}/input/bomb.pkl", "strength": 0.5},
              {"checkpoint": str(comfy.base / "input" / "bomb.pkl"), "strength": 0.5},
              {"base": f"{up}/input/huge", "strength": 0.5},
              {"base": str(comfy.base / "input" / "huge"), "strength": 0.5}]
    for widgets in cases:
        msg = _refusal(comfy, pixel, "ultravsr", widgets)
        assert OUTSIDE in msg, (widgets, msg)
    assert proc.memory_info().rss - rss < 64 * 2**20


def _bad_headers(folder: Path) -> dict[str, bytes]:
    deep = b"[" * 200_000 + b"]" * 200_000
    return {
        "deep.safetensors": len(deep).to_bytes(8, "little") + deep,
        "deep-metadata.safetensors": _header({"__metadata__": {"format": "x"}, "w": {"a": [[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]}}),
        "huge-length.safetensors": (2**62).to_bytes(8, "little") + b"{}",
        "cut.safetensors": (1000).to_bytes(8, "little") + b'{"w": ',
        "not-json.safetensors": (4).to_bytes(8, "little") + b"\xff\xfe{[",
        "empty.safetensors": b"",
    }


def _header(obj) -> bytes:
    import json

    data = json.dumps(obj).encode()
    return len(data).to_bytes(8, "little") + data


def test_bad_safetensors_headers_never_hide_the_loader_or_other_models(comfy, pixel, tiny_ditn_path):
    from safetensors.torch import save_file

    folder = comfy.base / "models" / "superres" / "bad-headers"
    folder.mkdir()
    try:
        for name, data in _bad_headers(folder).items():
            (folder / name).write_bytes(data)
        save_file(torch.load(tiny_ditn_path, weights_only=True), str(folder / "good.safetensors"))
        status, info = comfy.request("GET", "/object_info/SuperResLoadDITN")
        assert status == 200, info
        models = info["SuperResLoadDITN"]["input"]["required"]["model"][0]
        assert "superres/bad-headers/good.safetensors" in models and "superres/tiny_ditn.pth" in models
        assert not [m for m in models if "bad-headers" in m and "good" not in m], models
        log = comfy.log()
        for name in _bad_headers(folder):
            assert re.search(rf"{re.escape(str(folder / name))} is left out of the model list: .*not a readable "
                             "safetensors file", log), name
        assert comfy.get("/object_info")["SuperResLoadDITN"]  # the whole list too
        h = comfy.run(image_prompt(comfy, pixel, "superres/bad-headers/good.safetensors", out="good_sft"))
        assert h["status"]["status_str"] == "success", h["status"]
    finally:
        shutil.rmtree(folder)
    assert os.path.isdir(comfy.base / "models" / "superres")


# ---------------------------------------------------------------- the pixel and memory budget
def _grey_prompt(comfy, count: int, width: int, height: int, *, video: bool = False, out: str = "budget") -> dict:
    from graphs import node

    prompt = {
        "1": node(comfy, "SuperResProbeGreyBatch", count=count, width=width, height=height),
        "2": node(comfy, "SuperResLoadDITN", model="superres/tiny_ditn.pth", device="cpu"),
    }
    if video:
        prompt["5"] = node(comfy, "CreateVideo", images=["1", 0], fps=24.0)
        prompt["3"] = node(comfy, "SuperResUpscaleVideo", model=["2", 0], video=["5", 0])
        prompt["4"] = node(comfy, "SuperResProbeSaveVideo", video=["3", 0], name=out)
    else:
        prompt["3"] = node(comfy, "SuperResUpscaleImage", model=["2", 0], image=["1", 0])
        prompt["4"] = node(comfy, "SuperResProbeSaveImage", image=["3", 0], name=out)
    return prompt


@pytest.mark.parametrize("video", [False, True], ids=["image", "video"])
def test_a_batch_over_the_memory_is_refused_before_it_runs(comfy, video):
    """A million 64x64 frames (x4: 12 TB of output): refused at once by the budget, naming the
    sizes and the memory, with nothing computed and the server's memory unmoved."""
    proc = psutil.Process(comfy.proc.pid)
    rss = proc.memory_info().rss
    h = comfy.run(_grey_prompt(comfy, 1_000_000, 64, 64, video=video), timeout=120)
    msg = error_message(h)
    what = "VIDEO" if video else "IMAGE batch"
    assert f"cannot upscale the {what}: 64x64 -> 256x256" in msg, msg
    assert "the 1000000 output frames the node returns" in msg and "GB is available" in msg, msg
    assert not comfy.output("budget.npy").exists()
    assert proc.memory_info().rss - rss < 256 * 2**20


def test_a_picture_over_the_pixel_limit_is_refused_before_it_runs(comfy):
    """The pixel limit of every input ($SUPERRES_MAX_PIXELS, default about 179 megapixels)."""
    h = comfy.run(_grey_prompt(comfy, 1, 20000, 10000, out="pixels"), timeout=120)
    msg = error_message(h)
    assert "the IMAGE batch: it is 20000x10000 pixels (200 megapixels), over the limit" in msg, msg
    assert "SUPERRES_MAX_PIXELS=200000000" in msg


@pytest.mark.parametrize("video", [False, True], ids=["image", "video"])
def test_an_empty_input_is_named_as_what_it_is(comfy, video):
    msg = error_message(comfy.run(_grey_prompt(comfy, 0, 16, 16, video=video, out="empty")))
    node = "SuperRes Upscale Video" if video else "SuperRes Upscale Image"
    what = "VIDEO" if video else "IMAGE batch"
    assert f"{node}: the {what} is empty: there is no frame to upscale" in msg, msg


def test_an_unreadable_video_is_named_without_a_traceback(comfy):
    from graphs import video_prompt

    (comfy.base / "input" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"junk" * 100)
    prompt = video_prompt(comfy, "broken.mp4", "superres/tiny_ditn.pth", out="broken")
    del prompt["5"]  # the probe of the input would meet the file first
    h = comfy.run(prompt)
    msg = error_message(h)
    assert msg.startswith("vs_superres.comfy_nodes.host.SuperResNodeError: SuperRes Upscale Video: 'broken.mp4' "
                          "cannot be decoded as a video"), msg
    assert "re-encode it" in msg
    data = next(d for k, d in h["status"]["messages"] if k == "execution_error")
    assert data["node_type"] == "SuperResUpscaleVideo"
    assert not any("/av/" in line or "video_types.py" in line for line in data["traceback"]), data["traceback"]
