"""core.superres exists without importing the engine, and every argument error is clear."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import vapoursynth as vs

VIDEO_MODEL = "temporal-mean-x2"


def rgbs(width=32, height=24, length=4):
    return vs.core.std.BlankClip(width=width, height=height, format=vs.RGBS, length=length, color=[0.2, 0.4, 0.6])


def plugin_info(code_after_core: str = "", env: dict | None = None) -> subprocess.CompletedProcess:
    """A fresh Python that creates a core and prints the superres namespace as JSON."""
    code = (
        "import json, sys, vapoursynth as vs\n"
        "core = vs.core\n"
        "ns = {p.namespace: p for p in core.plugins()}\n"
        "p = ns.get('superres')\n"
        "print(json.dumps({'id': p and p.identifier,\n"
        "                  'functions': p and [[f.name, f.signature, f.return_signature] for f in p.functions()],\n"
        "                  'torch': 'torch' in sys.modules,\n"
        "                  'bridge': 'vs_superres.vapoursynth.bridge' in sys.modules}))\n"
        + code_after_core
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=None if env is None else {**os.environ, **env})


def test_namespace_autoloads_with_the_declared_signatures():
    from vs_superres.vapoursynth import signatures

    r = plugin_info()
    assert r.returncode == 0, r.stderr
    assert "vs-superres" not in r.stderr, r.stderr
    info = json.loads(r.stdout)
    assert info["id"] == "com.vs-superres.superres"
    # Loading the plugin reads the signatures (torch-free) and nothing else of the engine.
    assert not info["torch"] and not info["bridge"], info
    # Exactly what signatures() declares (tests/vapoursynth/test_signatures.py checks those
    # against the option declarations).
    registered = [(name, args) for name, args, _ret in info["functions"]]
    assert sorted(registered) == sorted(signatures.signatures())
    assert {ret for _n, _a, ret in info["functions"]} == {"clip:vnode;"}
    assert {"DITN", "UltraVSR", "Upscale"} <= {name for name, _a in registered}


def test_registration_failures_are_one_clear_line_and_vapoursynth_keeps_working(tmp_path):
    blank = "print(core.std.BlankClip(width=8, height=8, length=2).get_frame(1).width)\n"
    # A family module that does not exist: it is skipped with a warning naming it; the built-in
    # families are still registered (one typo must not remove every function).
    r = plugin_info(blank, env={"SUPERRES_FAMILIES": "no_such_family_module"})
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout.splitlines()[0])
    assert info["id"] == "com.vs-superres.superres", info
    assert {"DITN", "UltraVSR", "Upscale"} <= {name for name, *_ in info["functions"]}, info
    assert r.stdout.splitlines()[1] == "8"
    assert ("model family no_such_family_module was not registered: ModuleNotFoundError: "
            "No module named 'no_such_family_module'") in r.stderr, r.stderr
    # vs_superres shadowed by another package: the import is named, with the likely cause.
    fake = tmp_path / "shadow" / "vs_superres"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    r = plugin_info(blank, env={"PYTHONPATH": f"{fake.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[0])["functions"] == []
    lines = [line for line in r.stderr.splitlines() if "vs-superres" in line]
    assert lines == [
        "vs-superres: core.superres has no functions: cannot import vs_superres.vapoursynth.signatures "
        "(ModuleNotFoundError: No module named 'vs_superres.vapoursynth'); is vs-superres installed in "
        "the Python that VapourSynth runs?"
    ], r.stderr


def test_bridge_routes_every_declared_argument():
    """Each argument of each registered function reaches the engine (engine options) or the
    model (family options); 0/1 ints become the booleans declared."""
    from vs_superres.runtime.engine_options import ENGINE_OPTIONS
    from vs_superres.vapoursynth import bridge, signatures

    samples = {"int": 1, "bool": 1, "float": 0.5, "str": "x", "path": "x"}
    for fn in vs.core.superres.functions():
        declared = signatures.function_options(fn.name)
        names = [arg.split(":")[0] for arg in fn.signature.rstrip(";").split(";")]
        assert names[:2] == ["clip", "model"] and names[2:] == list(declared.names()), fn.name
        engine, options = bridge._split_args(fn.name, {o.name: samples[o.type] for o in declared})
        assert set(engine) == {o.name for o in declared if o.name in ENGINE_OPTIONS}
        assert set(options) == {o.name for o in declared if o.name not in ENGINE_OPTIONS}
        for o in declared:
            if o.type == "bool":
                assert {**engine, **options}[o.name] is True, (fn.name, o.name)


def test_plugin_is_the_installed_file():
    from vs_superres.vapoursynth import plugin_path

    path = plugin_path()
    assert path is not None and path.parent.name == "plugins" and path.stem == "vs_superres"
    loaded = getattr(vs.core.superres, "plugin_path", None)
    if loaded is not None:
        assert Path(loaded).resolve() == path.resolve()


def test_output_geometry_and_properties():
    clip = rgbs(length=6)
    clip = vs.core.std.SetFrameProps(clip, _SARNum=4, _SARDen=3, _Matrix=1, _Primaries=1, _Transfer=1)
    up = vs.core.superres.Upscale(clip, model=VIDEO_MODEL)
    assert (up.width, up.height, up.num_frames, up.format.id) == (64, 48, 6, vs.RGBS)
    assert (up.fps_num, up.fps_den) == (clip.fps_num, clip.fps_den)
    props = up.get_frame(2).props
    # Both axes scale by the same factor, so the sample aspect ratio is unchanged.
    assert (props["_SARNum"], props["_SARDen"], props["_Matrix"], props["_Transfer"]) == (4, 3, 1, 1)


def error_of(fn, *args, **kwargs) -> str:
    with pytest.raises(vs.Error) as info:
        fn(*args, **kwargs)
    text = str(info.value)
    assert "Traceback" not in text and "File \"" not in text, text
    return text


def test_wrong_format_names_the_fix():
    yuv = vs.core.std.BlankClip(format=vs.YUV420P8, width=32, height=24)
    assert error_of(vs.core.superres.DITN, yuv) == (
        "superres.DITN: only RGBS and RGBH clips are supported, got YUV420P8; convert first: "
        'clip = core.resize.Bicubic(clip, format=vs.RGBS, matrix_in_s="170m") (SD video\'s BT.601; '
        "leave matrix_in_s out when the frames carry _Matrix)"
    )
    rgb24 = vs.core.std.BlankClip(format=vs.RGB24, width=32, height=24)
    assert "got RGB24" in error_of(vs.core.superres.UltraVSR, rgb24)


def test_variable_format_and_size_fail_clearly():
    mixed = vs.core.std.Splice([rgbs(), vs.core.std.BlankClip(format=vs.YUV444PS, width=32, height=24, length=4)], mismatch=True)
    msg = error_of(vs.core.superres.Upscale, mixed, model=VIDEO_MODEL)
    assert msg.startswith("superres.Upscale: the clip has a variable format") and "convert every part to one format" in msg
    sizes = vs.core.std.Splice([rgbs(), rgbs(width=40)], mismatch=True)
    msg = error_of(vs.core.superres.Upscale, sizes, model=VIDEO_MODEL)
    assert msg.startswith("superres.Upscale: the clip has a variable frame size")


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (dict(tile=-1), "tile must be >= 0, got -1"),
        (dict(dtype="fp64"), "unknown dtype 'fp64'; allowed: fp32, fp16, bf16"),
        (dict(device="tpu"), "unknown device 'tpu'; allowed: auto, cpu, cuda, cuda:<index>, mps"),
        (dict(window=0), "window must be >= 1, got 0"),
        (dict(window=4, window_overlap=4), "window_overlap must be in [0, 3], got 4"),
        (dict(overlap=-3), "overlap must be >= 0, got -3"),
        (dict(strength=0.5), "takes no model options; got strength"),
        (dict(unet_tile=64, prompt="a cat"), "takes no model options; got prompt, unet_tile"),
        (dict(merge_lora=2), "merge_lora must be 0 or 1 (False or True), got 2"),
        (dict(model="no-such-model"), "unknown model 'no-such-model'"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, expected):
    kwargs = {"model": VIDEO_MODEL, "device": "cpu", **kwargs}
    msg = error_of(vs.core.superres.Upscale, rgbs(), **kwargs)
    assert msg.startswith("superres.Upscale: ") and expected in msg, msg


def test_model_must_match_the_function():
    msg = error_of(vs.core.superres.DITN, rgbs(), model=VIDEO_MODEL)
    assert msg.startswith("superres.DITN: model 'temporal-mean-x2' is a temporal-mean model, not a DITN model")
    assert "core.superres.Upscale(clip, model='temporal-mean-x2')" in msg
    assert "model is required" in error_of(vs.core.superres.Upscale, rgbs())


def test_window_arguments_are_for_video_models(ditn_model):
    # DITN's signature has no window: VapourSynth names the argument.
    msg = error_of(vs.core.superres.DITN, rgbs(), model=ditn_model, device="cpu", window=5)
    assert msg == "DITN: Function does not take argument(s) named window"
    # Upscale takes every argument; the engine says why this one does not apply.
    msg = error_of(vs.core.superres.Upscale, rgbs(), model=ditn_model, device="cpu", window=5)
    assert msg.startswith("superres.Upscale: window applies to video models only")


def test_fp16_on_cpu_is_refused_with_the_alternative():
    msg = error_of(vs.core.superres.Upscale, rgbs(), model=VIDEO_MODEL, device="cpu", dtype="fp16")
    assert "dtype fp16 is not supported on device cpu" in msg


def test_render_errors_become_frame_errors(monkeypatch):
    from vs_superres.contracts.errors import UnsupportedFormat
    from vs_superres.vapoursynth import bridge

    up = vs.core.superres.Upscale(rgbs(), model=VIDEO_MODEL, device="cpu")

    def bug(*a, **k):
        raise RuntimeError("synthetic failure")

    # Anything but a SuperResError is a bug of ours, and says so; its traceback goes to
    # VapourSynth's log (a warning: vspipe shows it), never into the error message.
    monkeypatch.setattr(bridge.VSFilter, "_render", bug)
    logged = []
    handle = vs.core.add_log_handler(lambda level, msg: logged.append((level, msg)))
    try:
        with pytest.raises(vs.Error) as info:
            up.get_frame(0)
    finally:
        vs.core.remove_log_handler(handle)
    assert str(info.value) == (
        "superres.Upscale: internal error (RuntimeError: synthetic failure); this is a bug in vs-superres, "
        "please report it with the VapourSynth log"
    )
    traces = [msg for level, msg in logged if "superres.Upscale: internal error; traceback:" in msg]
    assert len(traces) == 1, logged
    assert "Traceback (most recent call last)" in traces[0] and "RuntimeError: synthetic failure" in traces[0]
    assert "in bug" in traces[0]  # the frame that raised
    assert [level for level, msg in logged if msg == traces[0]] == [vs.MESSAGE_TYPE_WARNING]

    def user_error(*a, **k):
        raise UnsupportedFormat("frame 1 is too dark")

    # A user error keeps its own message, named by the function.
    monkeypatch.setattr(bridge.VSFilter, "_render", user_error)
    with pytest.raises(vs.Error) as info:
        up.get_frame(1)
    assert str(info.value) == "superres.Upscale: frame 1 is too dark"


def test_internal_errors_at_creation_are_bugs_with_a_logged_traceback(monkeypatch):
    from vs_superres.vapoursynth import bridge

    def broken(self, *a, **k):
        raise KeyError("synthetic")

    monkeypatch.setattr(bridge.VSFilter, "__init__", broken)
    logged = []
    handle = vs.core.add_log_handler(lambda level, msg: logged.append((level, msg)))
    try:
        msg = error_of(vs.core.superres.DITN, rgbs())
    finally:
        vs.core.remove_log_handler(handle)
    assert msg.startswith("superres.DITN: internal error (KeyError: 'synthetic'); this is a bug in vs-superres")
    traces = [(level, m) for level, m in logged if m.startswith("superres.DITN: internal error; traceback:")]
    assert len(traces) == 1 and traces[0][0] == vs.MESSAGE_TYPE_WARNING, logged
    assert "in broken" in traces[0][1] and "KeyError: 'synthetic'" in traces[0][1]


def test_filter_frees_its_engine():
    import gc

    from vs_superres.vapoursynth import bridge

    created = []
    original = bridge.VSFilter.__init__

    def spy(self, *a, **k):
        original(self, *a, **k)
        created.append(self)

    bridge.VSFilter.__init__ = spy
    try:
        up = vs.core.superres.Upscale(rgbs(), model=VIDEO_MODEL, device="cpu")
        np.asarray(up.get_frame(0)[0])
    finally:
        bridge.VSFilter.__init__ = original
    assert created and created[0].upscaler is not None
    del up
    gc.collect()
    assert created[0].upscaler is None  # the free callback closed the engine


def test_ultravsr_family_and_clean_failure(ultravsr_release, tmp_path, monkeypatch):
    msg = error_of(vs.core.superres.UltraVSR, rgbs(), model=VIDEO_MODEL)
    assert msg.startswith("superres.UltraVSR: model 'temporal-mean-x2' is a temporal-mean model, not an UltraVSR model")
    # Nothing installed (an empty weight search path): one message naming the missing
    # checkpoint, every place it was looked for, and where it comes from.
    monkeypatch.setenv("SUPERRES_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    msg = error_of(vs.core.superres.UltraVSR, rgbs(), device="cpu", strength=0.3)
    assert msg.startswith("superres.UltraVSR: weight file 'ultravsr/UltraVSR.pkl' was not found"), msg
    assert f"{tmp_path / 'weights' / 'ultravsr' / 'UltraVSR.pkl'}" in msg and "https://github.com/yongliuy/UltraVSR" in msg
    # The checkpoint but no base model: the base folder is named, with how to get it.
    msg = error_of(vs.core.superres.UltraVSR, rgbs(), device="cpu", strength=0.3, checkpoint=ultravsr_release["checkpoint"])
    assert msg.startswith("superres.UltraVSR: base model 'stabilityai/stable-diffusion-2-1-base' is not a local folder"), msg
    assert "hf download stabilityai/stable-diffusion-2-1-base" in msg
    # With the (tiny) release, a x4 filter of the clip's length.
    up = vs.core.superres.UltraVSR(rgbs(), device="cpu", strength=0.3, **ultravsr_release)
    assert (up.width, up.height, up.num_frames, up.format.id) == (128, 96, 4, vs.RGBS)


def test_nothing_reaches_stdout_while_filters_render(capfd, monkeypatch):
    """A library that prints while a frame renders must not write into a vspipe video stream."""
    from vs_superres.vapoursynth import bridge

    render = bridge.VSFilter._render

    def chatty(self, *a, **k):
        print("chatter from a library")
        return render(self, *a, **k)

    monkeypatch.setattr(bridge.VSFilter, "_render", chatty)
    up = vs.core.superres.Upscale(rgbs(), model=VIDEO_MODEL, device="cpu")
    for fut in [up.get_frame_async(n) for n in range(4)]:
        np.asarray(fut.result()[0])
    print("the script's own print")  # stdout is back once no filter is rendering
    out, err = capfd.readouterr()
    assert out == "the script's own print\n"
    assert err.count("chatter from a library") == 4
