"""``superres-filter`` per carrier, as a real process fed by the real ffmpeg: the frames it
writes are the engine's on the same input (bit-identical: every carrier is lossless), and
counts, rates, time stamps, tags, bit depth and the other streams are kept."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from bridge_helpers import (assert_frames_equal, decode, engine_reference, ffmpeg_bytes, ffprobe,
                            filter_cmd, make_clips, needs_ffmpeg, packets, run_filter, video_times)

pytestmark = needs_ffmpeg


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return make_clips(tmp_path_factory.mktemp("bridge_clips"))


def y4m_header(data: bytes) -> dict[str, str]:
    line = data[: data.index(b"\n")].decode()
    assert line.startswith("YUV4MPEG2 ")
    return {f[0]: f[1:] for f in line.split()[1:]}


@pytest.mark.parametrize("clip, model", [("420.mkv", "ditn"), ("420p10.mkv", "temporal-mean-x2"),
                                         ("444.mkv", "ditn")])
def test_y4m_frames_are_the_engines(clips, clip, model, tiny_ditn_path):
    model = str(tiny_ditn_path) if model == "ditn" else model
    y4m = ffmpeg_bytes("-i", clips[clip], "-fps_mode", "passthrough", "-strict", "-1", "-f", "yuv4mpegpipe", "-")
    src = y4m_header(y4m)
    source_colour = ffprobe(clips[clip])["streams"][0]
    matrix = source_colour["color_space"]
    run = run_filter("-m", model, "--matrix", matrix, "--device", "cpu", input=y4m)
    assert run.returncode == 0, run.stderr.decode()
    out = run.stdout
    head = y4m_header(out)
    scale = 2 if model.endswith("x2") else 4
    assert (int(head["W"]), int(head["H"])) == (scale * int(src["W"]), scale * int(src["H"]))
    for field in ("F", "I", "A", "C", "X"):
        assert head.get(field) == src.get(field), field  # rate, interlacing, aspect, chroma, range
    frames = decode(out, "yuv4mpegpipe")
    # the y4m's samples, read with the colour of the file they came from (y4m has no matrix)
    _, info = engine_reference(clips[clip], "temporal-mean-x2")
    reference, _ = engine_reference(y4m, model, colour=info.colour)
    assert len(frames) == 8
    assert frames[0].format.name == info.pix_fmt  # bit depth and subsampling kept
    assert_frames_equal(frames, reference, info.colour)
    assert b"no colour matrix; converting with" not in run.stderr  # --matrix was given: nothing assumed


def test_y4m_without_matrix_says_what_it_assumed_once(clips):
    y4m = ffmpeg_bytes("-i", clips["420.mkv"], "-fps_mode", "passthrough", "-f", "yuv4mpegpipe", "-")
    run = run_filter("-m", "temporal-mean-x2", input=y4m)
    assert run.returncode == 0, run.stderr.decode()
    err = run.stderr.decode()
    assert err.count("y4m carries no colour matrix; converting with smpte170m, the default for 32x24") == 1
    assert "--matrix" in err
    # the assumed matrix (SMPTE 170M at this size) is the one both directions convert with
    _, info = engine_reference(clips["420.mkv"], "temporal-mean-x2")
    colour = dataclasses.replace(info.colour, matrix=6)
    reference, _ = engine_reference(clips["420.mkv"], "temporal-mean-x2", colour=colour)
    assert_frames_equal(decode(run.stdout, "yuv4mpegpipe"), reference, colour)


def test_y4m_header_fields_survive(clips):
    """Interlacing, aspect, chroma siting and range of the y4m header are written back."""
    y4m = ffmpeg_bytes("-i", clips["420.mkv"], "-vf", "setsar=4/3,setfield=tff",
                       "-chroma_sample_location", "topleft", "-color_range", "pc",
                       "-f", "yuv4mpegpipe", "-")
    src = y4m_header(y4m)
    assert (src["I"], src["A"], src["C"]) == ("t", "4:3", "420paldv")
    run = run_filter("superres=model=temporal-mean-x2:device=cpu", "--matrix", "bt709", input=y4m)
    assert run.returncode == 0, run.stderr.decode()
    head = y4m_header(run.stdout)
    assert (head["I"], head["A"], head["C"], head["F"]) == ("t", "4:3", "420paldv", "24:1")
    assert "XCOLORRANGE=FULL" in run.stdout[: run.stdout.index(b"\n")].decode()


@pytest.mark.parametrize("fmt, args", [("yuv4mpegpipe", ["--matrix", "bt709"]),
                                       ("nut", ["-c:v", "rawvideo"]),
                                       ("matroska", ["-c:v", "ffv1"])])
def test_sample_aspect_ratio_is_kept_in_every_carrier(clips, fmt, args, caplog):
    """A 4:3 sample aspect comes out 4:3 at twice the size: the same display aspect."""
    ff_args = [a for a in args if not a.startswith("--") and a != "bt709"]
    data = ffmpeg_bytes("-i", clips["420.mkv"], "-map", "0:v", "-fps_mode", "passthrough",
                        "-vf", "setsar=4/3", *ff_args, "-f", fmt, "-")
    src = ffprobe(data)["streams"][0]
    assert (src["sample_aspect_ratio"], src["display_aspect_ratio"]) == ("4:3", "16:9")
    bridge_args = [a for a in args if a.startswith("--") or a == "bt709"]
    run = run_filter("-m", "temporal-mean-x2", *bridge_args, input=data)
    assert run.returncode == 0, run.stderr.decode()
    assert b"not written" not in run.stderr and "not written" not in caplog.text
    out = ffprobe(run.stdout)["streams"][0]
    assert (out["width"], out["height"]) == (64, 48)
    assert (out["sample_aspect_ratio"], out["display_aspect_ratio"]) == ("4:3", "16:9")
    assert len(decode(run.stdout)) == 8  # the carrier is still well-formed


def test_output_aspect_keeps_the_display_aspect():
    from fractions import Fraction

    from vs_superres.ffmpeg_filter.sink import output_aspect

    assert output_aspect(Fraction(4, 3), (32, 24), (64, 48)) == Fraction(4, 3)
    assert output_aspect(Fraction(1), (32, 24), (64, 24)) == Fraction(1, 2)
    assert output_aspect(Fraction(4, 3), (720, 576), (1440, 1152)) == Fraction(4, 3)


def test_stream_aspect_setter_refuses_what_it_does_not_know():
    import io
    from fractions import Fraction

    import av

    from vs_superres.media.stream_aspect import set_stream_aspect

    assert set_stream_aspect(object(), Fraction(4, 3)) is False  # not a PyAV stream: untouched
    with av.open(io.BytesIO(), "w", format="nut") as container:
        audio = container.add_stream("pcm_s16le", rate=48000)
        video = container.add_stream("rawvideo", rate=24)
        assert set_stream_aspect(video, Fraction(4, 3)) is True
        assert set_stream_aspect(audio, Fraction(1)) is True  # each stream its own field
        assert video.index == 1 and audio.index == 0


def model_name(model: str, tiny_ditn_path) -> str:
    """The diagnostic video model by name, DITN as the tiny checkpoint file."""
    return str(tiny_ditn_path) if model == "ditn" else model


@pytest.mark.parametrize("clip, model", [("420.mkv", "temporal-mean-x2"), ("420p10.mkv", "temporal-mean-x2"),
                                         ("444.mkv", "temporal-mean-x2"), ("rgb.mkv", "temporal-mean-x2"),
                                         ("420.mkv", "ditn"), ("rgb.mkv", "ditn")])
def test_matroska_keeps_video_tags_and_every_other_stream(clips, clip, model, tiny_ditn_path):
    model = model_name(model, tiny_ditn_path)
    data = clips[clip].read_bytes()  # a Matroska file is a Matroska stream
    run = run_filter(f"superres=model={model}", input=data)
    assert run.returncode == 0, run.stderr.decode()
    out = run.stdout
    src, dst = ffprobe(clips[clip]), ffprobe(out)
    sv, dv = src["streams"][0], dst["streams"][0]
    scale = 2 if model == "temporal-mean-x2" else 4
    assert (dv["width"], dv["height"]) == (scale * sv["width"], scale * sv["height"])
    for key in ("pix_fmt", "color_range", "color_space", "color_primaries", "color_transfer",
                "chroma_location", "r_frame_rate"):
        assert dv.get(key) == sv.get(key), key
    # 8-bit 4:2:0 is stored as it is (no encode cost); 10-bit, 4:4:4 and RGB as FFV1
    assert dv["codec_name"] == ("rawvideo" if clip == "420.mkv" else "ffv1")
    assert dv.get("sample_aspect_ratio", "1:1") == sv.get("sample_aspect_ratio", "1:1") == "1:1"
    assert video_times(out) == video_times(clips[clip])
    reference, info = engine_reference(clips[clip], model)
    assert_frames_equal(decode(out), reference, info.colour)
    others = [(s["codec_type"], s["codec_name"], s.get("tags", {}).get("language")) for s in src["streams"][1:]]
    assert others == [(s["codec_type"], s["codec_name"], s.get("tags", {}).get("language"))
                      for s in dst["streams"][1:]]
    for kind in ("audio", "subtitle"):
        assert packets(out, kind) == packets(clips[clip], kind)  # same bytes at the same times


@pytest.mark.parametrize("model", ["temporal-mean-x2", "ditn"])
def test_nut_keeps_variable_frame_rate_and_packed_rgb(clips, model, tiny_ditn_path):
    model = model_name(model, tiny_ditn_path)
    nut = ffmpeg_bytes("-i", clips["vfr.mkv"], "-fps_mode", "passthrough", "-enc_time_base", "-1",
                       "-pix_fmt", "rgb24",
                       "-c:v", "rawvideo", "-f", "nut", "-")
    run = run_filter("-m", model, input=nut)
    assert run.returncode == 0, run.stderr.decode()
    frames = decode(run.stdout, "nut")
    assert frames[0].format.name == "rgb24" and len(frames) == 8
    times = video_times(run.stdout)
    assert times == video_times(nut)
    assert times[4] - times[3] > 2 * (times[1] - times[0])  # the variable frame rate's gap is kept
    reference, info = engine_reference(nut, model)
    assert_frames_equal(frames, reference, info.colour)


@pytest.mark.parametrize("model", ["temporal-mean-x2", "ditn"])
def test_rawvideo_in_nut_out(clips, model, tiny_ditn_path):
    model = model_name(model, tiny_ditn_path)
    raw = ffmpeg_bytes("-i", clips["420.mkv"], "-fps_mode", "passthrough", "-f", "rawvideo",
                       "-pix_fmt", "yuv420p", "-")
    assert len(raw) == 8 * 32 * 24 * 3 // 2
    run = run_filter("-f", "rawvideo", "-s", "32x24", "-pix_fmt", "yuv420p", "-r", "24", "--matrix",
                     "bt709", "--chroma-location", "left", "-i", "-", "-m", model,
                     "-f", "nut", "-", input=raw)
    assert run.returncode == 0, run.stderr.decode()
    frames = decode(run.stdout, "nut")
    scale = 2 if model == "temporal-mean-x2" else 4
    assert [(f.width, f.height, f.format.name) for f in frames] == [(32 * scale, 24 * scale, "yuv420p")] * 8
    reference, info = engine_reference(clips["420.mkv"], model)
    assert_frames_equal(frames, reference, info.colour)


def test_rawvideo_out_is_bare_frames(clips):
    y4m = ffmpeg_bytes("-i", clips["444.mkv"], "-fps_mode", "passthrough", "-f", "yuv4mpegpipe", "-")
    run = run_filter("-m", "temporal-mean-x2", "--matrix", "bt709", "--output-format", "rawvideo", input=y4m)
    assert run.returncode == 0, run.stderr.decode()
    assert len(run.stdout) == 8 * 64 * 48 * 3  # nothing but the samples: stdout is only video
    frames = decode(run.stdout, "rawvideo", video_size="64x48", pixel_format="yuv444p", framerate="24")
    assert len(frames) == 8


def test_options_in_filter_syntax_and_flags_agree(clips, tiny_ditn_path):
    y4m = ffmpeg_bytes("-i", clips["420.mkv"], "-frames:v", "2", "-f", "yuv4mpegpipe", "-")
    a = run_filter(f"superres=model={tiny_ditn_path}:tile=16:overlap=4:device=cpu", "-nostats", input=y4m)
    b = filter_cmd("--model", tiny_ditn_path, "--tile", "16", "--overlap", "4", "--device", "cpu", input=y4m)
    assert a.returncode == b.returncode == 0, a.stderr.decode() + b.stderr.decode()
    assert a.stdout == b.stdout
    assert b"frame=" in b.stderr and b"frame=" not in a.stderr  # -nostats: no progress line
    bad = run_filter("superres=model=temporal-mean-x2:window=0", input=y4m)
    assert bad.returncode == 2 and b"window must be an integer >= 1, got 0" in bad.stderr, bad.stderr
    assert bad.stdout == b""


def test_rate_of_ntsc_y4m_is_kept(clips):
    y4m = ffmpeg_bytes("-i", clips["420.mkv"], "-r", "30000/1001", "-f", "yuv4mpegpipe", "-")
    run = filter_cmd("-m", "temporal-mean-x2", "--matrix", "bt709", input=y4m)  # the real process
    assert run.returncode == 0
    assert y4m_header(run.stdout)["F"] == "30000:1001"


# ------------------------------------------------------------- Matroska: rawvideo or FFV1

def _stream_info(pix_fmt: str, colour, size=(32, 24)):
    from fractions import Fraction

    from vs_superres.media import StreamInfo
    from vs_superres.media.convert import pixel_layout

    return StreamInfo(width=size[0], height=size[1], fps=Fraction(24), time_base=Fraction(1, 1000),
                      pix_fmt=pix_fmt, layout=pixel_layout(pix_fmt), colour=colour)


def _photo(width: int, height: int, seed: int) -> np.ndarray:
    from skimage import data as skdata

    photo = skdata.astronaut()[100 + seed: 100 + seed + height, 150: 150 + width].astype("float32") / 255
    return np.ascontiguousarray(photo.transpose(2, 0, 1))


def _write_sink(carrier_name: str, pix_fmt: str, colour, frames, **sink) -> bytes:
    import io

    from vs_superres.ffmpeg_filter.carriers import carrier
    from vs_superres.ffmpeg_filter.sink import PipeSink

    out = io.BytesIO()
    writer = PipeSink(out, carrier(carrier_name), _stream_info(pix_fmt, colour), 32, 24, **sink)
    for index, rgb in enumerate(frames):
        writer.write(rgb, 1000 * index // 24)
    writer.close()
    return out.getvalue()


#: the colour every format below is tagged with: nothing at its default
_TAGS = dict(matrix=5, range=2, primaries=5, transfer=6, chroma_location=3)


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuyv422", "yuv422p", "yuv410p", "yuv411p", "gray",
                                     "uyvy422", "nv12", "nv21", "rgba", "yvyu422",
                                     "yuv444p", "yuv420p10le", "rgb24", "gbrp", "gray16le", "p010le",
                                     "yuv440p", "yuv422p10le", "bgr0"])
def test_matroska_video_is_rawvideo_where_the_muxer_keeps_the_pixel_format(pix_fmt):
    """Every format of the list comes back from the Matroska stream as itself, uncompressed,
    with every colour tag and every sample; the others are FFV1, equally exact."""
    import io

    from vs_superres.ffmpeg_filter.carriers import CARRIERS, MATROSKA_RAW_PIX_FMTS
    from vs_superres.ffmpeg_filter.sink import output_pix_fmt
    from vs_superres.media import VideoReader
    from vs_superres.media.colour import ColourInfo
    from vs_superres.media.convert import pixel_layout

    layout = pixel_layout(pix_fmt)
    subsampled = bool(layout.log2_w or layout.log2_h)
    tags = dict(_TAGS, matrix=0) if layout.kind == "rgb" else dict(_TAGS)
    if not subsampled:
        tags["chroma_location"] = ColourInfo().chroma_location
    colour = ColourInfo(**tags, chroma_location_guessed=not subsampled)
    rgb = [_photo(32, 24, seed) for seed in (0, 7)]
    data = _write_sink("matroska", pix_fmt, colour, rgb)
    raw = pix_fmt in MATROSKA_RAW_PIX_FMTS
    codec = "rawvideo" if raw else "ffv1"
    expected = pix_fmt if raw else output_pix_fmt(CARRIERS["matroska"], pix_fmt)
    got = pixel_layout(expected)  # FFV1's own layout where it lacks the source's: the same samples
    assert (got.kind, got.bits, got.subsampling) == (layout.kind, layout.bits, layout.subsampling)
    with VideoReader(io.BytesIO(data)) as reader:  # what the next superres-filter reads
        info = reader.info
    assert (info.codec_name, info.pix_fmt) == (codec, expected)
    for key in ("matrix", "range", "primaries", "transfer"):
        assert getattr(info.colour, key) == getattr(colour, key), key
    if subsampled and not raw:  # rawvideo: see the next test
        assert (info.colour.chroma_location, info.colour.chroma_location_guessed) == (3, False)
    assert_frames_equal(decode(data), rgb, colour)
    probed = ffprobe(data)["streams"][0]  # FFmpeg 5.1, the receiving ffmpeg, reads it alike
    assert (probed["codec_name"], probed["pix_fmt"]) == (codec, expected)
    assert probed.get("color_range") == "pc"
    if layout.kind != "rgb":
        assert (probed.get("color_space"), probed.get("color_primaries"),
                probed.get("color_transfer")) == ("bt470bg", "bt470bg", "smpte170m")
    if subsampled:
        assert probed.get("chroma_location") == "topleft"


def test_media_reader_reads_the_chroma_siting_of_matroska_rawvideo():
    import io

    from vs_superres.media import VideoReader
    from vs_superres.media.colour import ColourInfo

    colour = ColourInfo(**_TAGS)
    data = _write_sink("matroska", "yuv420p", colour, [_photo(32, 24, 0)])
    with VideoReader(io.BytesIO(data)) as reader:
        assert reader.info.codec_name == "rawvideo"
        assert (reader.info.colour.chroma_location, reader.info.colour.chroma_location_guessed) == (3, False)


def test_matroska_raw_list_is_every_format_the_muxer_keeps():
    """Over every pixel format the writer can fill: Matroska takes it as ``rawvideo`` and reads
    it back as itself, and so does the system's ffprobe, exactly when it is in the list (the
    others are refused, or come back as another format: yuvj420p as yuv420p; y210le only with
    PyAV's FFmpeg), so the list is neither short nor long."""
    import io
    import subprocess

    from vs_superres.contracts.errors import UnsupportedFormat
    from vs_superres.ffmpeg_filter.carriers import MATROSKA_RAW_PIX_FMTS
    from vs_superres.media import VideoWriter
    from vs_superres.media.colour import ColourInfo
    from vs_superres.media.encoders import fill_format

    listing = subprocess.run(["ffmpeg", "-hide_banner", "-pix_fmts"], capture_output=True, text=True).stdout
    names = [line.split()[1] for line in listing.splitlines() if line[:1] in "I." and len(line.split()) > 3]
    kept = set()
    for name in names:
        if fill_format(name) is None:
            continue
        out = io.BytesIO()
        try:
            writer = VideoWriter(out, _stream_info(name, ColourInfo()), 32, 24, codec="rawvideo",
                                 pix_fmt=name, format="matroska")
        except UnsupportedFormat:
            continue
        writer.write(np.full((3, 24, 32), 0.5, dtype=np.float32), 0)
        writer.close()
        if decode(out.getvalue())[0].format.name != name:
            continue
        # and the system's ffmpeg, which receives the pipe, reads it as the same format too
        # (FFmpeg 5.1 has no fourcc for y210le, which PyAV's newer FFmpeg writes)
        probed = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=pix_fmt", "-of",
                                 "default=nw=1:nk=1", "-"], input=out.getvalue(), capture_output=True)
        if probed.stdout.split() == [name.encode()]:
            kept.add(name)
    assert kept == MATROSKA_RAW_PIX_FMTS


def test_without_the_stream_aspect_setter_y4m_rewrites_its_header_and_nut_says_so(clips, monkeypatch,
                                                                                 caplog):
    """Where the guarded setter refuses (an unknown PyAV/FFmpeg layout), y4m still carries the
    aspect in its header's ``A`` field and the other carriers name the ``setsar`` to give."""
    import vs_superres.media.writer as writer

    monkeypatch.setattr(writer, "set_stream_aspect", lambda stream, aspect: False)
    y4m = ffmpeg_bytes("-i", clips["420.mkv"], "-vf", "setsar=4/3", "-f", "yuv4mpegpipe", "-")
    run = run_filter("-m", "temporal-mean-x2", "--matrix", "bt709", input=y4m)
    assert run.returncode == 0, run.stderr.decode()
    assert y4m_header(run.stdout)["A"] == "4:3" and "not written" not in caplog.text
    assert len(decode(run.stdout, "yuv4mpegpipe")) == len(decode(y4m, "yuv4mpegpipe"))
    nut = run_filter("-m", "temporal-mean-x2", "--matrix", "bt709", "--output-format", "nut", input=y4m)
    assert nut.returncode == 0, nut.stderr.decode()
    # (in this process pytest holds the log handler; the console script prints it on stderr)
    assert "sample aspect ratio 4:3 is not written" in caplog.text and "setsar=4/3" in caplog.text
    assert ffprobe(nut.stdout)["streams"][0].get("sample_aspect_ratio", "1:1") in ("1:1", "0:1")
