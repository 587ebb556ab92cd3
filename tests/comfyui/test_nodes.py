"""The nodes in a real ComfyUI server: widgets, outputs equal to the engine's, video with
audio, video models, progress, interruption, validation and error messages."""

from __future__ import annotations

import json
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from graphs import image_prompt, node, video_prompt
from conftest import error_message

from vs_superres import Upscaler
from vs_superres.comfy_nodes.inputs import AUTO, family_ports, one_family_ports
from vs_superres.comfy_nodes.loaders import loader_id
from vs_superres.comfy_nodes.v1 import v1_input
from vs_superres.runtime.engine_options import ENGINE_OPTIONS
from vs_superres.runtime.registry import default_registry


@pytest.fixture(scope="module")
def photo(comfy, astronaut):
    """A 40x32 crop of a real photograph in ComfyUI's input folder, and the IMAGE LoadImage makes of it."""
    crop = (astronaut[60:92, 180:220] * 255).round().astype(np.uint8)
    Image.fromarray(crop).save(comfy.base / "input" / "photo.png")
    return "photo.png", crop.astype(np.float32) / 255.0


@pytest.fixture(scope="module")
def clip_with_audio(comfy, astronaut):
    """A real video file written with PyAV: 10 frames 32x24 at 24 fps, stereo AAC at 48 kHz."""
    path = comfy.base / "input" / "clip.mp4"
    with av.open(str(path), "w") as c:
        v = c.add_stream("mpeg4", rate=24)
        v.width, v.height, v.pix_fmt = 32, 24, "yuv420p"
        a = c.add_stream("aac", rate=48000, layout="stereo")
        for i in range(10):
            img = (astronaut[100 + 4 * i:124 + 4 * i, 200:232] * 255).astype(np.uint8)
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        t = np.arange(48000 // 2) / 48000
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
        frame.sample_rate = 48000
        for p in a.encode(frame):
            c.mux(p)
        for p in a.encode():
            c.mux(p)
    return "clip.mp4"


def engine(model, torch_threads, frames_hwc, scene_starts=None, **kwargs):
    """The engine's output on the same frames, ``[B, sH, sW, C]`` as ComfyUI holds it."""
    with torch_threads(1):
        with Upscaler(model, device="cpu", **kwargs) as up:
            x = torch.from_numpy(np.ascontiguousarray(frames_hwc)).movedim(-1, 1)
            return up.upscale(x, scene_starts=scene_starts).movedim(1, -1).numpy()


def succeeded(history) -> bool:
    return history["status"]["status_str"] == "success"


# ---------------------------------------------------------------- widgets
def test_widgets_are_the_declared_options(comfy):
    """One loader per family with that family's declared options only; the legacy loader keeps
    every family's widgets (saved workflows) and is hidden from the node library."""
    for fam in default_registry().families():
        info = comfy.object_info(loader_id(fam))
        required = info["input"]["required"]
        assert info["category"] == "superres" and info["output"] == ["SUPERRES_MODEL"]
        assert info["display_name"] == f"SuperRes Load {fam.title or fam.name}" and not info.get("deprecated")
        assert list(required) == ["model", "device", "dtype", *(p.name for p in one_family_ports(fam))], fam.name
        assert required["dtype"][0] == list(ENGINE_OPTIONS.get("dtype").choices)
        assert {"auto", "cpu"} <= set(required["device"][0])
        for port in one_family_ports(fam):
            assert required[port.name] == json.loads(json.dumps(v1_input(port))), port.name
    ditn = comfy.object_info("SuperResLoadDITN")["input"]["required"]
    assert list(ditn) == ["model", "device", "dtype", "backend"]
    assert ditn["model"][0][:2] == ["ditn-real-x4", "ditn-real-gan-x4"]  # the family's default first
    assert "superres/tiny_ditn.pth" in ditn["model"][0]
    assert comfy.object_info("SuperResLoadTemporalMean")["input"]["required"]["model"][0] == ["temporal-mean-x2"]
    uvsr = comfy.object_info("SuperResLoadUltraVSR")["input"]["required"]
    # spot checks against the declarations as a user reads them
    assert uvsr["strength"][1]["max"] == 1.0 and uvsr["strength"][1]["default"] == AUTO
    assert uvsr["unet_tile"][1]["min"] == 8 and uvsr["unet_tile"][1]["default"] == 96
    assert "wavelet" in uvsr["color_fix"][0] and uvsr["color_fix"][1]["default"] == "wavelet"
    assert uvsr["base"][0] == "STRING" and uvsr["merge_lora"][0] == "BOOLEAN"
    assert "tagger" not in uvsr and "backend" not in uvsr and "gamma_simple" not in uvsr
    legacy = comfy.object_info("SuperResModelLoader")
    assert legacy["deprecated"] is True
    assert list(legacy["input"]["required"]) == ["model", "device", "dtype", *(p.name for p in family_ports())]
    up = comfy.object_info("SuperResUpscaleImage")["input"]
    assert up["required"]["tile"][1]["min"] == AUTO and up["required"]["batch"][1]["min"] == 1
    assert up["optional"]["scene_cuts"][0] == "SUPERRES_SCENE_CUTS"
    assert comfy.object_info("SuperResUpscaleVideo")["output"] == ["VIDEO"]


# ---------------------------------------------------------------- images
def test_image_workflow_equals_engine(comfy, photo, tiny_ditn_path, torch_threads):
    name, frame = photo
    h = comfy.run(image_prompt(comfy, name, "superres/tiny_ditn.pth", out="tiny", tile=16, overlap=8))
    assert succeeded(h), h["status"]
    got = np.load(comfy.output("tiny.npy"))
    want = engine(tiny_ditn_path, torch_threads, frame[None], tile=16, overlap=8)
    assert got.shape == (1, 128, 160, 3) and got.dtype == np.float32
    assert np.array_equal(got, want)


def test_real_ditn_x4_equals_engine(comfy, photo, ditn_x4_path, torch_threads):
    name, frame = photo
    h = comfy.run(image_prompt(comfy, name, "ditn-real-x4", out="real"))
    assert succeeded(h), h["status"]
    got = np.load(comfy.output("real.npy"))
    assert np.array_equal(got, engine("ditn-real-x4", torch_threads, frame[None]))


# ---------------------------------------------------------------- video
def engine_file(model, torch_threads, src, dst, scene_starts=None, **kwargs):
    """The engine on a video file through the project's reader, run path and writer (what
    ``superres upscale`` does), into ``dst``; its decoded frames ``[T, 3, H, W]``."""
    from vs_superres.media import transcode

    def process(frames):
        yield from up.stream((torch.from_numpy(f) for f in frames), total=frames.total, scene_starts=scene_starts)

    with torch_threads(1), Upscaler(model, device="cpu", **kwargs) as up:
        transcode(src, dst, process, keep_lossless=True)
    return decoded(dst)


def decoded(path) -> np.ndarray:
    from vs_superres.media import VideoReader

    with VideoReader(path) as reader:
        return np.stack(list(reader.frames()))


def test_loaded_video_is_streamed_into_a_file_with_rate_and_audio(comfy, clip_with_audio, tiny_ditn_path,
                                                                  torch_threads, tmp_path):
    """LoadVideo's VIDEO is a file: the node writes its result to ComfyUI's temp folder through
    the project's writer and returns that file; SaveVideo copies it; frames, rate and audio kept."""
    prompt = video_prompt(comfy, clip_with_audio, "superres/tiny_ditn.pth", out="vid")
    prompt["7"] = node(comfy, "SaveVideo", video=["3", 0], filename_prefix="video/sr", format="mp4", codec="h264")
    h = comfy.run(prompt)
    assert succeeded(h), h["status"]
    info, info_in = (json.loads(comfy.output(n).read_text()) for n in ("vid.json", "vid_in.json"))
    source = Path(info["source"])
    assert source.parent == comfy.base / "temp" and source.name.startswith("superres_") and source.suffix == ".mp4"
    assert info["frames"] == info_in["frames"] == 10
    assert Fraction(*info["fps"]) == Fraction(24) == Fraction(*info_in["fps"])
    assert info["sample_rate"] == info_in["sample_rate"] == 48000
    # the audio packets are copied, not re-encoded: they decode to the very same samples
    assert np.array_equal(np.load(comfy.output("vid.audio.npy")), np.load(comfy.output("vid_in.audio.npy")))
    assert np.load(comfy.output("vid.npy")).shape == (10, 96, 128, 3)
    saved = sorted((comfy.base / "output" / "video").glob("sr*.mp4"))[-1]
    with av.open(str(saved)) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (128, 96)
        assert c.streams.video[0].codec_context.name == "h264" and len(c.streams.audio) == 1
    want = engine_file(tiny_ditn_path, torch_threads, comfy.base / "input" / clip_with_audio, tmp_path / "want.mp4")
    assert np.array_equal(decoded(saved), want)  # SaveVideo copied the streams of the engine's file


@pytest.fixture(scope="module")
def lossless_clip(comfy, astronaut):
    """A lossless (FFV1) 12-frame 32x24 clip with FLAC audio in Matroska."""
    path = comfy.base / "input" / "lossless.mkv"
    with av.open(str(path), "w") as c:
        v = c.add_stream("ffv1", rate=25)
        v.width, v.height, v.pix_fmt = 32, 24, "yuv444p"
        a = c.add_stream("flac", rate=48000, layout="mono")
        for i in range(12):
            img = np.ascontiguousarray((astronaut[40 + 3 * i:64 + 3 * i, 150:182] * 255).astype(np.uint8))
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        t = np.arange(48000 // 2) / 48000
        samples = (0.2 * np.sin(2 * np.pi * 330 * t) * 32767).astype(np.int16)[None]
        for start in range(0, samples.shape[1], 4096):  # FLAC's encoder takes at most its block size
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + 4096]), format="s16",
                                               layout="mono")
            frame.sample_rate, frame.pts = 48000, start
            for p in a.encode(frame):
                c.mux(p)
        for p in a.encode():
            c.mux(p)
    return "lossless.mkv"


def test_video_model_with_scene_cuts_equals_engine(comfy, lossless_clip, torch_threads, tmp_path):
    """A lossless source stays lossless, so the saved file holds the engine's output exactly
    (in the source's Y'CbCr), scene cuts included."""
    prompt = video_prompt(comfy, lossless_clip, "temporal-mean-x2", out="tm", cuts="0, 4")
    prompt["7"] = node(comfy, "SaveVideo", video=["3", 0], filename_prefix="video/tm", format="auto", codec="auto")
    h = comfy.run(prompt)
    assert succeeded(h), h["status"]
    saved = sorted((comfy.base / "output" / "video").glob("tm*.mp4"))[-1]
    with av.open(str(saved)) as c:
        assert c.streams.video[0].codec_context.name == "ffv1" and c.streams.audio[0].codec_context.name == "flac"
    starts = [i in (0, 4) for i in range(12)]
    src = comfy.base / "input" / lossless_clip
    want = engine_file("temporal-mean-x2", torch_threads, src, tmp_path / "cut.mp4", scene_starts=starts)
    got = decoded(saved)
    assert got.shape == (12, 3, 48, 64)
    assert np.array_equal(got, want)
    assert not np.array_equal(got, engine_file("temporal-mean-x2", torch_threads, src, tmp_path / "uncut.mp4"))


def test_video_from_images_keeps_the_decoded_path(comfy, clip_with_audio, tiny_ditn_path, torch_threads):
    """A VIDEO made from an IMAGE batch (CreateVideo) is no file: it is upscaled as the batch it
    holds, bit for bit the engine's output, rate and audio kept."""
    prompt = {
        "1": node(comfy, "LoadVideo", file=clip_with_audio),
        "2": node(comfy, "GetVideoComponents", video=["1", 0]),
        "3": node(comfy, "CreateVideo", images=["2", 0], audio=["2", 1], fps=24.0),
        "4": node(comfy, "SuperResLoadDITN", model="superres/tiny_ditn.pth", device="cpu"),
        "5": node(comfy, "SuperResUpscaleVideo", model=["4", 0], video=["3", 0]),
        "6": node(comfy, "SuperResProbeSaveVideo", video=["5", 0], name="comp"),
        "7": node(comfy, "SuperResProbeSaveImage", image=["2", 0], name="comp_in"),
    }
    h = comfy.run(prompt)
    assert succeeded(h), h["status"]
    info = json.loads(comfy.output("comp.json").read_text())
    assert info["source"] is None and info["frames"] == 10 and Fraction(*info["fps"]) == 24
    assert info["sample_rate"] == 48000
    got = np.load(comfy.output("comp.npy"))
    assert np.array_equal(got, engine(tiny_ditn_path, torch_threads, np.load(comfy.output("comp_in.npy"))))


@pytest.fixture(scope="module")
def tiny_ultravsr(comfy):
    from vs_superres.models.ultravsr.tiny import write_tiny_release

    base, ckpt = write_tiny_release(comfy.base / "models" / "superres" / "ultravsr-tiny")
    return {"base": "ultravsr-tiny/" + base.name, "checkpoint": "ultravsr-tiny/" + ckpt.name, "strength": 0.5}, base, ckpt


def test_tiny_ultravsr_on_an_image_batch_equals_engine(comfy, clip_with_audio, tiny_ultravsr, torch_threads):
    widgets, base, ckpt = tiny_ultravsr
    prompt = {
        "1": node(comfy, "LoadVideo", file=clip_with_audio),
        "2": node(comfy, "GetVideoComponents", video=["1", 0]),
        "3": node(comfy, "SuperResLoadUltraVSR", model="ultravsr", device="cpu", **widgets),
        "4": node(comfy, "SuperResUpscaleImage", model=["3", 0], image=["2", 0]),
        "5": node(comfy, "SuperResProbeSaveImage", image=["4", 0], name="uvsr"),
        "6": node(comfy, "SuperResProbeSaveImage", image=["2", 0], name="uvsr_in"),
    }
    h = comfy.run(prompt, timeout=600)
    assert succeeded(h), h["status"]
    frames_in = np.load(comfy.output("uvsr_in.npy"))
    got = np.load(comfy.output("uvsr.npy"))
    assert got.shape == (10, 96, 128, 3)
    want = engine("ultravsr", torch_threads, frames_in, base=str(base), checkpoint=str(ckpt), strength=0.5)
    assert np.array_equal(got, want)


# ---------------------------------------------------------------- progress, interruption
@pytest.fixture(scope="module")
def big_photo(comfy, astronaut):
    img = (astronaut[:256, :256] * 255).astype(np.uint8)
    Image.fromarray(img).save(comfy.base / "input" / "big.png")
    return "big.png"


def test_progress_then_interrupt_then_next_run_works(comfy, big_photo, photo):
    ws = comfy.websocket()
    try:
        # 256 tiles of 16 px: long enough to interrupt in the middle
        pid = comfy.queue(image_prompt(comfy, big_photo, "superres/tiny_ditn.pth", out="cut", tile=16, overlap=8))
        first = ws.json_messages(lambda m: m["type"] == "progress" and m["data"].get("prompt_id") == pid, timeout=120)[-1]
        assert first["data"]["node"] == "3" and first["data"]["max"] == 1000
        status, _ = comfy.post("/interrupt", {})
        assert status == 200
        rest = ws.json_messages(lambda m: m["type"] in ("execution_interrupted", "execution_success", "execution_error")
                                and m["data"].get("prompt_id") == pid, timeout=120)
    finally:
        ws.close()
    assert rest[-1]["type"] == "execution_interrupted", [m["type"] for m in rest]
    assert rest[-1]["data"]["node_id"] == "3"
    values = [m["data"]["value"] for m in rest if m["type"] == "progress" and m["data"].get("prompt_id") == pid]
    assert max(values, default=0) < 1000
    h = comfy.wait(pid)
    assert h["status"]["status_str"] == "error"
    assert not comfy.output("cut.npy").exists()  # no half result
    h = comfy.run(image_prompt(comfy, photo[0], "superres/tiny_ditn.pth", out="after", tile=16, overlap=8))
    assert succeeded(h) and comfy.output("after.npy").exists()


def test_progress_reaches_the_end(comfy, photo):
    ws = comfy.websocket()
    try:
        pid = comfy.queue(image_prompt(comfy, photo[0], "superres/tiny_ditn.pth", out="prog", tile=8, overlap=0))
        msgs = ws.json_messages(lambda m: m["type"] == "executing" and m["data"].get("node") is None
                                and m["data"].get("prompt_id") == pid, timeout=120)
    finally:
        ws.close()
    values = [m["data"]["value"] for m in msgs if m["type"] == "progress" and m["data"].get("node") == "3"]
    assert len(values) >= 10 and values == sorted(values) and values[-1] == 1000


# ---------------------------------------------------------------- errors
def test_out_of_range_widget_is_rejected_by_validation(comfy, photo):
    prompt = image_prompt(comfy, photo[0], "superres/tiny_ditn.pth", tile=-5)
    status, body = comfy.post("/prompt", {"prompt": prompt, "client_id": comfy.client_id})
    assert status == 400 and body["error"]["type"] == "prompt_outputs_failed_validation"
    assert [e["type"] for e in body["node_errors"]["3"]["errors"]] == ["value_smaller_than_min"]


def test_missing_weights_show_the_engine_message(comfy, photo):
    h = comfy.run(image_prompt(comfy, photo[0], "ultravsr", out="missing"))
    assert h["status"]["status_str"] == "error"
    msg = error_message(h)
    assert msg.startswith("vs_superres.comfy_nodes.host.SuperResNodeError: SuperRes Load UltraVSR: model files go into "
                          "ComfyUI's models/upscale_models/ or models/superres/ ")
    assert "ultravsr/UltraVSR.pkl" in msg and "widget 'checkpoint'" in msg
    data = next(d for k, d in h["status"]["messages"] if k == "execution_error")
    assert not any("site-packages/torch" in line for line in data["traceback"])


def test_invalid_option_value_shows_the_declared_range(comfy, photo, tiny_ultravsr):
    widgets = dict(tiny_ultravsr[0], strength=-0.5)  # inside the widget's range (-1 = auto), outside the option's
    h = comfy.run(image_prompt(comfy, photo[0], "ultravsr", loader=widgets))
    assert "widget 'strength' must be a number in (0, 1], got -0.5" in error_message(h)


def test_wrong_format_and_too_small_images(comfy, photo, tiny_ultravsr):
    rgba = image_prompt(comfy, photo[0], "superres/tiny_ditn.pth")
    rgba["5"] = node(comfy, "JoinImageWithAlpha", image=["1", 0], alpha=["1", 1])
    rgba["3"]["inputs"]["image"] = ["5", 0]
    msg = error_message(comfy.run(rgba))
    assert "SuperRes Upscale Image: " in msg and "channel" in msg, msg
    Image.fromarray(np.zeros((3, 3, 3), np.uint8)).save(comfy.base / "input" / "tiny.png")
    msg = error_message(comfy.run(image_prompt(comfy, "tiny.png", "ultravsr", loader=tiny_ultravsr[0])))
    assert "SuperRes Upscale Image: " in msg and "3x3" in msg.replace(" x ", "x"), msg


# ---------------------------------------------------------------- handle lifetime
def test_handle_is_cached_and_memory_does_not_grow(comfy, photo):
    import psutil

    proc = psutil.Process(comfy.proc.pid)
    ws = comfy.websocket()
    rss = []
    try:
        for i in range(5):
            # Alternating the tile makes each run build a new engine (the old one is closed first).
            pid = comfy.queue(image_prompt(comfy, photo[0], "superres/tiny_ditn.pth", out=f"mem{i}", tile=16 + 8 * (i % 2)))
            msgs = ws.json_messages(lambda m: m["type"] in ("execution_success", "execution_error")
                                    and m["data"].get("prompt_id") == pid, timeout=120)
            assert msgs[-1]["type"] == "execution_success"
            cached = [m["data"]["nodes"] for m in msgs if m["type"] == "execution_cached"]
            if i:
                assert "2" in cached[0], "the loader (and its model) must be reused"
            rss.append(proc.memory_info().rss)
    finally:
        ws.close()
    assert rss[-1] - rss[1] < 64 * 2**20, [r // 2**20 for r in rss]
    status, _ = comfy.post("/free", {"unload_models": True, "free_memory": True})
    assert status == 200
    threading.Event().wait(1.0)
    h = comfy.run(image_prompt(comfy, photo[0], "superres/tiny_ditn.pth", out="after_free"))
    assert succeeded(h)


def test_comfyui_hints_name_the_widget(comfy, photo):
    """A hint in the error panel names the loader's widget, never another host's flag."""
    h = comfy.run(image_prompt(comfy, photo[0], "temporal-mean-x2", out="hint_dtype", loader={"dtype": "fp16"}))
    msg = error_message(h)
    assert "dtype fp16 is not supported on device cpu" in msg
    assert "(use widget 'dtype' = fp32, or a GPU for fp16)" in msg and "--dtype" not in msg
    # (the device widget offers only the devices present: a CUDA hint cannot arise here)
