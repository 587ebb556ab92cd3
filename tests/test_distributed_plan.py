"""The distributed run's parts that need no Ray: the segment plan (a property test against the
one window scheduler and a single-process stream), the integer output codes and input planes,
the writer's ``write_frame``, and the errors given before Ray is reached (not installed,
unreachable address, images)."""

from __future__ import annotations

import argparse
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from vs_superres.contracts.errors import InvalidOption, SuperResError
from vs_superres.distributed.codes import OutputFormat, from_codes, to_codes
from vs_superres.distributed.plan import SEGMENT_OUTPUT_BUDGET, SegmentPlan, choose_windows_per_segment
from vs_superres.media.colour import ColourInfo
from vs_superres.media.convert import rgb_to_frame
from vs_superres.runtime.upscaler import Upscaler
from vs_superres.runtime.windows import TemporalWindowPlan


def _streamed(plan: SegmentPlan, num_frames: int) -> list:
    """The segments in the order a driver reading ``num_frames`` frames one by one releases them."""
    out: list = []
    for read in range(1, num_frames + 1):
        out += plan.settled(read, read == num_frames, start=len(out))
    return out


def test_streamed_segments_are_the_plan_of_the_whole_clip_and_cut_on_window_boundaries():
    rng = random.Random(13)
    for _ in range(400):
        length = rng.randint(1, 9)
        overlap = rng.randint(0, length - 1)
        n = rng.randint(1, 60)
        plan = SegmentPlan(length, overlap, rng.randint(1, 6))
        whole = plan.of_clip(n)
        assert _streamed(plan, n) == whole, (n, plan)
        # The outputs partition the clip; every cut is on the window grid.
        assert [f for s in whole for f in s.outputs] == list(range(n))
        grid = TemporalWindowPlan.for_clip(n, length, overlap)
        for s in whole[1:]:
            first_owned = s.windows[0] + (1 if grid.overlap else 0)  # the window before is for the crossfade
            assert s.outputs.start == first_owned * grid.stride
            assert s.inputs.start == s.windows[0] * grid.stride


def _frames(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 6, 8, generator=g)


@pytest.mark.parametrize("window,overlap", [(5, 2), (4, 0), (6, 3)])
def test_any_segment_size_gives_the_single_process_frames(window, overlap):
    """Every segment size, every clip length (shorter than a window too), with and without a
    scene cut: the segments' frames are the stream's, bit for bit."""
    up = Upscaler("temporal-mean-x2", device="cpu", window=window, window_overlap=overlap)
    for n in (1, 3, window, 11, 17):
        x = _frames(n, n)
        for cuts in (None, [i == n // 2 and i > 0 for i in range(n)]):
            ref = torch.stack(list(up.stream(iter(x), scene_starts=cuts, total=n)))
            for wps in (1, 2, 3, 7):
                plan = SegmentPlan(window, overlap, wps)
                got = []
                for seg in _streamed(plan, n):
                    inputs = {i: x[i] for i in seg.inputs}
                    got += list(up.render_segment(seg, n, inputs, cuts, None))
                assert torch.equal(torch.stack(got), ref), (n, wps, cuts)


def test_segment_size_follows_clip_length_workers_and_the_override():
    # about four segments per worker
    assert choose_windows_per_segment(1000, 2, 5, 2) == -(-125 // 3)
    assert choose_windows_per_segment(1000, 8, 5, 2) < choose_windows_per_segment(1000, 2, 5, 2)
    # big frames cap a segment so one worker's memory does not grow with the video
    assert choose_windows_per_segment(10**6, 1, 1, 0, output_frame_bytes=SEGMENT_OUTPUT_BUDGET // 8) == 8
    # a long clip of small frames: the budget, not the length, sets the segment (a bounded worker)
    small = 12 * 128 * 96
    assert choose_windows_per_segment(10**6, 2, 1, 0, output_frame_bytes=small) == SEGMENT_OUTPUT_BUDGET // small
    assert SEGMENT_OUTPUT_BUDGET <= 256 << 20
    assert choose_windows_per_segment(10, 1, 5, 2, segment_frames=9) == 3
    with pytest.raises(InvalidOption, match="segment_frames must be an integer >= 1, got 0"):
        choose_windows_per_segment(10, 1, 5, 2, segment_frames=0)


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le", "yuv444p16le", "gbrp", "gray"])
def test_output_codes_rebuild_the_writers_frame_exactly(pix_fmt):
    rgb = np.random.default_rng(1).random((3, 10, 14), dtype=np.float32)
    colour = ColourInfo(matrix=1, range=1, primaries=1, transfer=1, chroma_location=1)
    fmt = OutputFormat(pix_fmt, colour, 14, 10)
    want = rgb_to_frame(rgb, pix_fmt, colour)
    got = from_codes(to_codes(rgb, fmt), fmt)
    sample = 2 if pix_fmt.endswith("le") else 1
    for a, b in zip(want.planes, got.planes, strict=True):
        rows = [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width * sample] for p in (a, b)]
        assert np.array_equal(*rows)
    assert (got.colorspace, got.color_range) == (want.colorspace, want.color_range)
    with pytest.raises(SuperResError, match="NaN or infinite"):
        to_codes(np.full((3, 10, 14), np.nan, np.float32), fmt)


_INPUT_BYTES = {"yuv420p": 26 * 18 * 3 // 2, "yuv420p10le": 26 * 18 * 3, "nv12": 26 * 18 * 3 // 2,
                "yuyv422": 26 * 18 * 2, "rgb24": 26 * 18 * 3, "gray": 26 * 18}


@pytest.mark.parametrize("pix_fmt", sorted(_INPUT_BYTES))
def test_input_planes_convert_on_a_worker_to_the_readers_frames_exactly(tmp_path, pix_fmt):
    """Packed integer planes (what the driver ships) give the reader's float R'G'B' bit for bit,
    at 1.5-3 bytes a pixel instead of float32's 12."""
    import pickle

    from vs_superres.distributed.inputs import PackedInputs, pack, packs_exactly, rgb_of
    from vs_superres.media.video import VideoReader

    src = tmp_path / "in.nut"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=26x18:rate=12:duration=0.25",
                    "-pix_fmt", pix_fmt, "-c:v", "rawvideo", str(src)], check=True)
    with VideoReader(src) as reader:
        decoded = list(reader)
        colour = reader.info.colour
    assert decoded[0].frame is not None and decoded[0].frame.format.name == pix_fmt
    assert packs_exactly(decoded[0].frame, decoded[0].rgb, colour)
    batch = pickle.loads(pickle.dumps(PackedInputs(colour, tuple(pack(d.frame) for d in decoded))))
    assert batch.nbytes == len(decoded) * _INPUT_BYTES[pix_fmt] < np.stack([d.rgb for d in decoded]).nbytes / 3
    rgb = rgb_of(batch)
    assert rgb.dtype == np.float32 and np.array_equal(rgb, np.stack([d.rgb for d in decoded]))


def test_a_palette_input_is_not_packed_and_travels_as_float(tmp_path):
    from vs_superres.distributed.inputs import packs_exactly
    from vs_superres.media.video import VideoReader

    src = tmp_path / "in.nut"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=26x18:rate=12:duration=0.1",
                    "-pix_fmt", "pal8", "-c:v", "rawvideo", str(src)], check=True)
    with VideoReader(src) as reader:
        first = next(iter(reader))
        assert not packs_exactly(first.frame, first.rgb, reader.info.colour)


def test_writer_write_frame_takes_the_frame_write_would_make_and_refuses_others(tmp_path):
    """``write(rgb)`` is ``write_frame(rgb_to_frame(rgb, ...))``: the two videos' packets are
    identical (the files differ in Matroska's random segment UID only)."""
    from vs_superres.media.video import VideoReader
    from vs_superres.media.writer import VideoWriter

    src = tmp_path / "in.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=24x16:rate=12:duration=0.5",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", str(src)], check=True)
    with VideoReader(src) as reader:
        frames = list(reader)
        info = reader.info
    outs = []
    for name, use_frame in (("a.mkv", False), ("b.mkv", True)):
        with VideoWriter(tmp_path / name, info, 24, 16, codec="ffv1") as writer:
            for d in frames:
                if use_frame:
                    writer.write_frame(rgb_to_frame(d.rgb, writer.pix_fmt, writer.colour), d.pts)
                else:
                    writer.write(d.rgb, d.pts)
            with pytest.raises(SuperResError, match=r"a 12x8 yuv420p frame given to a 24x16 \S+ writer; make it with "
                                                    r"rgb_to_frame\(rgb, writer.pix_fmt, writer.colour\)"):
                writer.write_frame(rgb_to_frame(np.zeros((3, 8, 12), np.float32), "yuv420p", writer.colour))
            assert writer.frames_written == len(frames)
        outs.append(subprocess.run(["ffmpeg", "-v", "error", "-i", str(tmp_path / name), "-map", "0:v", "-c", "copy",
                                    "-f", "md5", "-"], capture_output=True, text=True, check=True).stdout)
    assert outs[0] == outs[1] and outs[0].startswith("MD5=")


def test_without_ray_the_error_says_how_to_install_it(tmp_path):
    code = ("import sys; sys.modules['ray'] = None\n"
            "from vs_superres.distributed import upscale_video\n"
            "from vs_superres.contracts.errors import SuperResError\n"
            "try:\n"
            "    upscale_video('in.mkv', 'out.mkv', model='temporal-mean-x2', workers=2)\n"
            "except SuperResError as e:\n"
            "    print(e)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "need Ray, which is not installed" in run.stdout and "`pip install vs-superres[ray]`" in run.stdout
    assert not (tmp_path / "out.mkv").exists()


def test_importing_the_package_imports_neither_ray_nor_torch():
    code = ("import sys; import vs_superres.distributed, vs_superres.cli.ray; "
            "print('ray' in sys.modules, 'torch' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.stdout.split() == ["False", "False"], run.stderr


def test_an_unreachable_address_is_refused_in_seconds():
    from vs_superres.distributed.cluster import probe

    with pytest.raises(SuperResError, match=r"cannot join the Ray cluster at '127.0.0.1:9': Connection refused.*ray start --head"):
        probe("127.0.0.1:9", timeout=2)
    with pytest.raises(SuperResError, match="cannot join the Ray cluster at 'ray://127.0.0.1:9'"):
        probe("ray://127.0.0.1:9", timeout=2)


@pytest.mark.parametrize("address", ["nonsense", "", "host:", "host:0", "host:99999", "http://host:6379",
                                     "ray://", ":6379", "host:63a9", "a b:6379"])
def test_a_malformed_address_is_refused_with_the_accepted_forms(address):
    from vs_superres.distributed.cluster import parse_address

    with pytest.raises(InvalidOption, match=r"is not a Ray address; give auto .*HOST:PORT .*ray://HOST:PORT"):
        parse_address(address)


@pytest.mark.parametrize("address,want", [("auto", None), ("10.0.0.1:6379", ("10.0.0.1", 6379)),
                                          ("ray://head:10001", ("head", 10001)), ("[::1]:6379", ("::1", 6379))])
def test_well_formed_addresses(address, want):
    from vs_superres.distributed.cluster import parse_address

    assert parse_address(address) == want


def _args(*argv: str) -> argparse.Namespace:
    from vs_superres.cli import build_parser

    return build_parser().parse_args(["upscale", "in", "out", *argv])


def test_cli_runs_on_this_machine_alone_without_the_flags_and_refuses_images(tmp_path):
    from vs_superres.cli.ray import run

    assert run(_args(), tmp_path / "in.mkv", tmp_path / "out.mkv") is None
    with pytest.raises(InvalidOption, match="'in.png' is an image, so upscale it without them"):
        run(_args("--workers", "2"), tmp_path / "in.png", tmp_path / "out.png")
    with pytest.raises(InvalidOption, match="--workers must be >= 1, got 0"):
        run(_args("--workers", "0"), tmp_path / "in.mkv", tmp_path / "out.mkv")
