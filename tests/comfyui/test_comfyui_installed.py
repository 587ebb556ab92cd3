"""Installed models only, through real servers (issue 24): a stock ComfyUI layout with the
DITN checkpoint in either of ComfyUI's folders runs the shipped example workflows unchanged;
with nothing installed the list says so and the error says where to put files; a workflow
saved with the old all-families loader keeps loading and running.

Each stock-layout test builds its own ComfyUI base (models, input) in its tmp_path and starts
its own server, with no weights anywhere else ($SUPERRES_WEIGHTS unset, an empty user cache).
"""

from __future__ import annotations

import json
import shutil

import av
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO, stock_server
from graphs import prompt_from_workflow

from vs_superres import Upscaler
from vs_superres.models.ditn.arch import build

WORKFLOWS = REPO / "comfy_nodes" / "workflows"
NOTHING = "(no DITN model installed: see the error when run)"


def _example_inputs(root, astronaut) -> dict:
    """example.png (40x32) and example.mp4 (6 frames 32x24) from a real photograph."""
    root.mkdir(parents=True, exist_ok=True)
    Image.fromarray((astronaut[60:92, 180:220] * 255).astype(np.uint8)).save(root / "example.png")
    with av.open(str(root / "example.mp4"), "w") as c:
        s = c.add_stream("mpeg4", rate=24)
        s.width, s.height, s.pix_fmt = 32, 24, "yuv420p"
        for i in range(6):
            img = np.ascontiguousarray((astronaut[100 + 3 * i:124 + 3 * i, 200:232] * 255).astype(np.uint8))
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return {"input/example.png": root / "example.png", "input/example.mp4": root / "example.mp4"}


def _models(server, loader="SuperResLoadDITN") -> list[str]:
    return server.object_info(loader)["input"]["required"]["model"][0]


@pytest.mark.parametrize("folder", ["upscale_models", "superres"])
def test_stock_layout_runs_the_example_workflows_unchanged(comfy_env, installed_layout, ditn_x4_path, astronaut,
                                                           tmp_path, folder):
    """The checkpoint under its release name in one of ComfyUI's folders is found by its sha256
    and offered as ``ditn-real-x4``, the name the examples use; a DITN checkpoint of another
    shape is offered by its file name; a file no family reads is not offered."""
    torch.manual_seed(0)
    torch.save(build({"dim": 8, "num_itl": 1, "num_sal": 1}).state_dict(), tmp_path / "small.pth")
    torch.save({"conv_first.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "RealESRGAN_x4plus.pth")
    files = {f"models/{folder}/DITN_Real_x4.pth": ditn_x4_path,
             "models/upscale_models/my_ditn.pth": tmp_path / "small.pth",
             "models/upscale_models/RealESRGAN_x4plus.pth": tmp_path / "RealESRGAN_x4plus.pth",
             **_example_inputs(tmp_path / "inputs", astronaut)}
    server = stock_server(comfy_env, installed_layout, tmp_path, files)
    try:
        assert _models(server) == ["ditn-real-x4", "upscale_models/my_ditn.pth"]
        assert server.object_info("SuperResLoadDITN")["input"]["required"]["model"][1]["default"] == "ditn-real-x4"
        for loader in ("SuperResLoadUltraVSR", "SuperResLoadPatchScaler"):
            assert len(_models(server, loader)) == 1 and _models(server, loader)[0].startswith("(no ")
        for name in ("upscale_image.json", "upscale_video.json"):
            h = server.run(prompt_from_workflow(server, json.loads((WORKFLOWS / name).read_text())), timeout=600)
            assert h["status"]["status_str"] == "success", (name, h["status"])
        image = sorted((server.base / "output" / "superres").glob("image*.png"))
        assert len(image) == 1 and Image.open(image[0]).size == (160, 128)
        video = sorted((server.base / "output" / "superres").glob("video*.mp4"))
        assert len(video) == 1
        with av.open(str(video[0])) as c:
            assert (c.streams.video[0].width, c.streams.video[0].height) == (128, 96)
            assert sum(1 for _ in c.decode(video=0)) == 6
    finally:
        server.stop()


def test_nothing_installed_says_where_to_put_files(comfy_env, installed_layout, astronaut, tmp_path):
    server = stock_server(comfy_env, installed_layout, tmp_path, _example_inputs(tmp_path / "inputs", astronaut))
    try:
        assert _models(server) == [NOTHING]
        workflow = json.loads((WORKFLOWS / "upscale_image.json").read_text())
        for model in ("ditn-real-x4", NOTHING):  # the example as shipped, and the list's one entry
            prompt = prompt_from_workflow(server, workflow)
            loader = next(k for k, n in prompt.items() if n["class_type"] == "SuperResLoadDITN")
            prompt[loader]["inputs"]["model"] = model
            status, body = server.post("/prompt", {"prompt": prompt, "client_id": server.client_id})
            assert status == 400 and body["error"]["type"] == "prompt_outputs_failed_validation", body
            (error,) = body["node_errors"][loader]["errors"]
            detail = error["details"]
            assert error["type"] == "custom_validation_failed" and detail.startswith("model - "), error
            # ComfyUI's folders first, then the file, its hash, and the engine's own places
            folders = detail.index("ComfyUI's models/upscale_models/ or models/superres/")
            assert folders < detail.index("DITN_Real_x4.pth") and "refresh the page (R)" in detail, detail
            assert "989dc21e2379c6924a6bd32696df0f1fa8cfd43dd557e1ae4126b97708695b5a" in detail
            assert str(tmp_path / "cache" / "vs-superres" / "ditn" / "DITN_Real_x4.pth") in detail
            if model == NOTHING:
                assert "no DITN model is installed" in detail
    finally:
        server.stop()


def test_a_workflow_saved_with_the_old_loader_keeps_loading(comfy, astronaut, ditn_x4_path, torch_threads):
    """The example as saved before the per-family loaders (the all-families SuperResModelLoader,
    35 widget values by position) still validates and runs, with DITN's values where they were."""
    saved = json.loads((REPO / "tests" / "comfyui" / "data" / "saved_before_issue24_upscale_image.json").read_text())
    assert [n["type"] for n in saved["nodes"]][1] == "SuperResModelLoader"
    crop = (astronaut[300:324, 200:232] * 255).astype(np.uint8)
    Image.fromarray(crop).save(comfy.base / "input" / "legacy.png")
    prompt = prompt_from_workflow(comfy, saved)
    inputs = prompt["2"]["inputs"]
    assert (inputs["model"], inputs["device"], inputs["dtype"], inputs["backend"]) == ("ditn-real-x4", "auto", "fp32", "torch")
    assert inputs["gamma_simple"] == 0.95 and inputs["seed"] == 0  # other families' values in their slots
    prompt["1"]["inputs"]["image"] = "legacy.png"
    prompt["4"]["inputs"]["filename_prefix"] = "legacy/out"
    h = comfy.run(prompt)
    assert h["status"]["status_str"] == "success", h["status"]
    (png,) = (comfy.base / "output" / "legacy").glob("out*.png")
    with torch_threads(1), Upscaler("ditn-real-x4", device="cpu") as up:
        want = up.upscale(torch.from_numpy(crop.astype(np.float32) / 255).movedim(-1, 0)).movedim(1, -1).numpy()[0]
    # SaveImage's own quantisation (x255, clipped, truncated)
    assert np.array_equal(np.asarray(Image.open(png)), np.clip(255.0 * want, 0, 255).astype(np.uint8))


def test_a_registered_file_elsewhere_is_not_offered_twice(comfy, ditn_x4_path):
    """The session server finds ditn-real-x4 through $SUPERRES_WEIGHTS; the same file in
    models/upscale_models/ adds no second entry (its sha256 names it)."""
    target = comfy.base / "models" / "upscale_models" / "copy_of_ditn.pth"
    shutil.copy(ditn_x4_path, target)
    try:
        models = _models(comfy)
        assert models.count("ditn-real-x4") == 1 and not [m for m in models if "copy_of_ditn" in m], models
    finally:
        target.unlink()
