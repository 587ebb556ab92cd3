"""PatchScaler in a real ComfyUI server: loader widgets from its declared options, a workflow
Loader(patchscaler-x4) -> SuperRes Upscale Image whose output is the engine's bit for bit (fp32,
one torch thread on both sides), and its errors on the loader node.

No PatchScaler weights exist: the release is ``models/patchscaler/tiny.py``'s (random weights in
the real checkpoint format plus a real diffusers AutoencoderKL folder), written into ComfyUI's
``models/superres`` so that the widgets can name it relative to that folder, as a user would.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from graphs import image_prompt
from conftest import REPO, error_message  # at import: later, `conftest` may name another folder's

from vs_superres import Upscaler
from vs_superres.comfy_nodes.inputs import one_family_ports
from vs_superres.comfy_nodes.v1 import v1_input
from vs_superres.models.patchscaler.options import OPTIONS
from vs_superres.runtime.registry import family
from vs_superres.numerics.resample import upscale_bicubic

FOLDER = "patchscaler-tiny"  # under ComfyUI's models/superres


@pytest.fixture(scope="module")
def release(comfy):
    """``(widgets naming the tiny release, checkpoint path, autoencoder path)``."""
    from vs_superres.models.patchscaler.tiny import write_tiny_release

    ckpt, vae = write_tiny_release(comfy.base / "models" / "superres" / FOLDER)
    return {"checkpoint": f"{FOLDER}/{ckpt.name}", "autoencoder": f"{FOLDER}/{vae.name}"}, ckpt, vae


@pytest.fixture(scope="module")
def photo(comfy, astronaut):
    """A 40x32 crop of a real photograph in ComfyUI's input folder (a 20x16 latent: two patches)."""
    crop = (astronaut[60:92, 180:220] * 255).round().astype(np.uint8)
    Image.fromarray(crop).save(comfy.base / "input" / "ps_photo.png")
    return "ps_photo.png", crop.astype(np.float32) / 255.0


def engine(torch_threads, frame_hwc, ckpt, vae, **options) -> np.ndarray:
    """The engine's fp32 output on the same frame, ``[1, 4H, 4W, 3]`` as ComfyUI holds it."""
    with torch_threads(1):
        with Upscaler("patchscaler-x4", device="cpu", dtype="fp32", checkpoint=str(ckpt), autoencoder=str(vae),
                      **options) as up:
            x = torch.from_numpy(np.ascontiguousarray(frame_hwc[None])).movedim(-1, 1)
            return up.upscale(x).movedim(1, -1).numpy()


def succeeded(history) -> bool:
    return history["status"]["status_str"] == "success"


def test_patchscaler_loader_has_its_declared_options_only(comfy):
    required = comfy.object_info("SuperResLoadPatchScaler")["input"]["required"]
    # no released weights: nothing installed, and the list says so (the release's files are widget values)
    assert required["model"][0] == ["(no PatchScaler model installed: see the error when run)"]
    ports = {p.name: p for p in one_family_ports(family("patchscaler"))}
    assert list(required) == ["model", "device", "dtype", *ports]
    assert list(ports) == [o.name for o in OPTIONS.for_hosts()]  # every declared option, nothing else
    for opt in OPTIONS.for_hosts():
        assert required[opt.name] == json.loads(json.dumps(v1_input(ports[opt.name]))), opt.name
        assert required[opt.name][1]["tooltip"].startswith(f"PatchScaler: {opt.help}"), opt.name
    # As a user reads them: the paper's defaults and ranges.
    assert required["gamma_simple"][0] == "FLOAT" and required["gamma_simple"][1]["default"] == 0.95
    assert (required["gamma_simple"][1]["min"], required["gamma_simple"][1]["max"]) == (0.0, 1.0)
    assert required["tau_hard"][0] == "INT" and required["tau_hard"][1]["default"] == 1000
    assert required["steps_medium"][1]["default"] == 14 and required["steps_medium"][1]["min"] == 1
    assert required["autoencoder"][0] == "STRING" and required["autoencoder"][1]["default"] == ""
    assert required["devices"][0] == "STRING"
    assert "wavelet" in required["color_fix"][0] and required["color_fix"][1]["default"] == "wavelet"


def test_workflow_equals_the_engine_bit_for_bit(comfy, release, photo, torch_threads):
    widgets, ckpt, vae = release
    name, frame = photo
    h = comfy.run(image_prompt(comfy, name, "patchscaler-x4", out="ps", loader=dict(widgets, dtype="fp32")))
    assert succeeded(h), (h["status"], comfy.log()[-3000:])
    got = np.load(comfy.output("ps.npy"))
    assert got.shape == (1, 128, 160, 3) and got.dtype == np.float32
    want = engine(torch_threads, frame, ckpt, vae)
    assert np.array_equal(got, want)
    # The networks ran: not the bicubic pre-upscale.
    bicubic = upscale_bicubic(torch.from_numpy(frame).movedim(-1, 0)[None], 4).clamp(0, 1).movedim(1, -1).numpy()
    assert np.abs(got - bicubic).mean() > 1e-3


def test_option_widgets_reach_the_engine(comfy, release, photo, torch_threads):
    """Grouping, schedule, stride, batch, seed and colour fix set on the loader: the engine's
    output with the same options, and not the defaults'."""
    widgets, ckpt, vae = release
    name, frame = photo
    options = dict(gamma_simple=0.3, gamma_medium=0.1, tau_simple=300, tau_medium=500, tau_hard=800, steps_simple=3,
                   steps_medium=4, steps_hard=5, patch_stride=4, patches_per_batch=2, seed=3, color_fix="adain")
    # Absolute paths work as well as paths under models/superres.
    loader = dict(options, checkpoint=str(ckpt), autoencoder=str(vae))
    h = comfy.run(image_prompt(comfy, name, "patchscaler-x4", out="ps_opts", loader=loader))
    assert succeeded(h), (h["status"], comfy.log()[-3000:])
    got = np.load(comfy.output("ps_opts.npy"))
    assert np.array_equal(got, engine(torch_threads, frame, ckpt, vae, **options))
    assert np.abs(got - engine(torch_threads, frame, ckpt, vae)).max() > 1e-3


def test_model_list_leaves_out_what_only_options_take(comfy, release):
    """The release's checkpoint (PatchScaler's format) and its autoencoder folder's files are
    values for the checkpoint/autoencoder widgets; picked as the model they would fail."""
    _, ckpt, vae = release
    assert (vae / "config.json").is_file() and any(vae.glob("*.safetensors"))
    for loader in ("SuperResModelLoader", "SuperResLoadPatchScaler", "SuperResLoadDITN"):
        models = comfy.object_info(loader)["input"]["required"]["model"][0]
        assert not [m for m in models if FOLDER in m], (loader, models)
    assert "superres/tiny_ditn.pth" in models  # a model file in the same folder still is one


def test_missing_autoencoder_names_the_widget(comfy, release, photo):
    widgets, _, _ = release
    h = comfy.run(image_prompt(comfy, photo[0], "patchscaler-x4", out="ps_missing",
                               loader={"checkpoint": widgets["checkpoint"]}))
    assert h["status"]["status_str"] == "error"
    msg = error_message(h)
    assert msg.startswith("vs_superres.comfy_nodes.host.SuperResNodeError: SuperRes Load PatchScaler: "), msg
    assert "weight file 'sd-vae-ft-mse' was not found" in msg and "widget 'autoencoder'" in msg, msg
    assert not comfy.output("ps_missing.npy").exists()


def test_bad_widget_values_show_the_engines_message(comfy, release, photo):
    widgets, _, _ = release
    for extra, expected in (
        (dict(gamma_simple=0.5, gamma_medium=0.6), "gamma_medium (0.6) must be less than gamma_simple (0.5)"),
        (dict(tau_simple=900), "tau_simple <= tau_medium <= tau_hard is required"),
        (dict(dtype="fp16"), "model 'patchscaler-x4' does not support fp16; it supports fp32, bf16"),
    ):
        h = comfy.run(image_prompt(comfy, photo[0], "patchscaler-x4", out="ps_bad", loader=dict(widgets, **extra)))
        msg = error_message(h)
        assert "SuperRes Load PatchScaler: " in msg and expected in msg, (extra, msg)
    assert not comfy.output("ps_bad.npy").exists()


# ---------------------------------------------------------------- the shipped example workflows
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")


def _frontend_slots(required: dict) -> list[tuple[str, list | str, dict]]:
    """``widgets_values`` slots ComfyUI's frontend reads a loader node's saved values into, in
    order: one per widget, plus its "control after generate" value after an INT that has one
    (every INT named ``seed`` unless ``control_after_generate`` is false: the frontend's rule)."""
    slots = []
    for name, spec in required.items():
        kind, opts = spec[0], (spec[1] if len(spec) > 1 else {})
        slots.append((name, kind, opts))
        if kind == "INT" and opts.get("control_after_generate", name in ("seed", "noise_seed")):
            slots.append((f"{name}:control_after_generate", list(CONTROL_VALUES), {}))
    return slots


def _misfits(slots, values) -> list[str]:
    if len(values) != len(slots):
        return [f"{len(values)} values for {len(slots)} widgets"]
    bad = []
    for (name, kind, opts), value in zip(slots, values):
        if name == "model":
            continue  # a registered name, installed or not on this server
        if isinstance(kind, list):
            ok = value in kind
        elif kind == "INT":
            ok = isinstance(value, int) and not isinstance(value, bool) and opts.get("min", value) <= value <= opts.get("max", value)
        elif kind == "FLOAT":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif kind == "BOOLEAN":
            ok = isinstance(value, bool)
        else:
            ok = isinstance(value, str)
        if not ok:
            bad.append(f"{name}={value!r}")
    return bad


def test_shipped_workflows_fit_the_loader_widgets(comfy):

    problems = {}
    for path in sorted((REPO / "comfy_nodes" / "workflows").glob("*.json")):
        for n in json.loads(path.read_text())["nodes"]:
            if n["type"].startswith("SuperResLoad") or n["type"] == "SuperResModelLoader":
                bad = _misfits(_frontend_slots(comfy.object_info(n["type"])["input"]["required"]), n["widgets_values"])
                if bad:
                    problems[path.name] = bad
    assert problems == {}
