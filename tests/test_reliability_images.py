"""Reliability of the image path: bombs and sizes, orientation, ICC profiles, bit depth, formats,
and the order of the checks, tried on every readable format through the CLI (``main([...])``:
exit status, message, what is on disk afterwards) and the Python API (read/probe/write_image).

Inputs are real photographs (scikit-image's) cut small, written by Pillow so that the
orientation and profile tags are the ones other software writes; the model is the tiny random
DITN checkpoint, so every CLI run takes milliseconds of compute.
"""

from __future__ import annotations

import io
import json
import resource
import struct
import subprocess
import sys
import time
import tracemalloc
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from vs_superres.cli import main
from vs_superres.contracts.errors import InvalidOption, SuperResError, UnsupportedFormat
from vs_superres.media import read_image, write_image
from vs_superres.media.icc import icc_colour_space
from vs_superres.media.budget import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, check_image_memory, image_job_bytes
from vs_superres.media.image_probe import probe_image
from vs_superres.media.images import IMAGE_READ_EXTENSIONS

READ_FORMATS = ["png", "jpg", "tif", "bmp", "webp"]
#: formats that carry an EXIF orientation (BMP has no metadata)
ORIENTED_FORMATS = ["png", "jpg", "tif", "webp"]
WRITE_FORMATS = ["png", "jpg", "tif"]
PIL_FORMAT = {"png": "PNG", "jpg": "JPEG", "tif": "TIFF", "bmp": "BMP", "webp": "WEBP"}


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A 24x40 uint8 crop of a real photograph (not square: rotations change its shape)."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[100:124, 180:220])


@pytest.fixture(scope="module")
def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def save_with_pillow(path, pixels: np.ndarray, *, orientation: int = 1, icc: bytes | None = None) -> None:
    """``pixels`` stored as-is (not rotated) with an EXIF orientation tag and/or ICC profile."""
    fmt = PIL_FORMAT[path.suffix[1:]]
    image = Image.fromarray(pixels)
    extra: dict = {}
    if orientation != 1:
        exif = Image.Exif()
        exif[0x0112] = orientation
        extra["exif"] = exif.tobytes()
    if icc is not None:
        extra["icc_profile"] = icc
    if fmt == "JPEG":
        extra.update(quality=95)
    if fmt == "WEBP":
        extra.update(lossless=True)
    image.save(path, fmt, **extra)


def upscale(*args) -> int:
    return main(["upscale", *map(str, args), "-q"])


def leftovers(folder, *keep) -> list[str]:
    """Files in ``folder`` besides ``keep``: an output that should not exist, or a partial file."""
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def messages(capsys, caplog) -> str:
    return capsys.readouterr().err + caplog.text


def bomb_png(path, side: int) -> None:
    """A ``side`` x ``side`` one-bit grey PNG of a single colour, streamed through zlib a band
    of rows at a time: a few hundred KB on disk, never held decoded here either."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    packer = zlib.compressobj(1)
    band = (b"\0" * (1 + (side + 7) // 8)) * 500
    idat = b"".join(packer.compress(band) for _ in range(side // 500)) + packer.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def run_child(code: str, env_extra: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
    """``code`` in a fresh interpreter; returns the run and the child's peak RSS in MB."""
    import os

    env = {**os.environ, **(env_extra or {})}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest of any child so far: only a new maximum is this child's.
    return run, (peak if peak > before else 0) / 1024


# ------------------------------------------------------------------------------------ formats
@pytest.mark.parametrize("ext", READ_FORMATS)
def test_every_readable_format_is_an_image_on_the_cli(ext, photo, tmp_path, tiny_ditn_path, capsys):
    src = tmp_path / f"in.{ext}"
    save_with_pillow(src, photo)
    code = upscale(src, tmp_path / "out.png", "--model", tiny_ditn_path, "--device", "cpu")
    err = capsys.readouterr().err
    assert code == 0, err
    assert "video" not in err
    out, info = read_image(tmp_path / "out.png")
    assert (info.width, info.height) == (160, 96)
    assert f".{ext}" in IMAGE_READ_EXTENSIONS
    assert leftovers(tmp_path, src.name, "out.png") == []


@pytest.mark.parametrize("ext", READ_FORMATS)
def test_probe_reads_the_header_only(ext, photo, tmp_path):
    src = tmp_path / f"in.{ext}"
    save_with_pillow(src, photo, orientation=1 if ext == "bmp" else 6)
    info = probe_image(src)
    # orientation 6 turns the stored 40x24 picture upright: 24 wide, 40 high
    expected = (40, 24) if ext == "bmp" else (24, 40)
    assert (info.width, info.height, info.bit_depth, info.has_alpha) == (*expected, 8, False)
    assert info.format == {"jpg": "jpeg", "tif": "tiff"}.get(ext, ext)


def test_format_is_told_by_content_not_extension(photo, tmp_path):
    src = tmp_path / "really_a_png.jpg"
    save_with_pillow(tmp_path / "x.png", photo)
    (tmp_path / "x.png").rename(src)
    rgb, info = read_image(src)
    assert info.format == "png"
    np.testing.assert_array_equal(rgb, photo / np.float32(255))


# ----------------------------------------------------------------------- broken input, order
def broken_files(tmp_path, photo, ext):
    good = tmp_path / f"good.{ext}"
    save_with_pillow(good, photo)
    data = good.read_bytes()
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(data[: len(data) // 2])
    junk = tmp_path / f"junk.{ext}"
    junk.write_bytes(b"this is not a picture at all" * 4)
    good.unlink()
    return cut, junk


@pytest.mark.parametrize("ext", READ_FORMATS)
def test_broken_image_fails_before_the_model_is_looked_at(ext, photo, tmp_path, capsys):
    """The image error is reported, not the (also wrong) model path: the input was checked first."""
    for bad in broken_files(tmp_path, photo, ext):
        code = upscale(bad, tmp_path / "out.png", "--model", tmp_path / "no_such_model.pth")
        err = capsys.readouterr().err
        assert code == 2, err
        assert f"cannot read '{bad}'" in err and "no_such_model" not in err
        assert "Traceback" not in err
    assert leftovers(tmp_path, f"cut.{ext}", f"junk.{ext}") == []


@pytest.mark.parametrize("ext", READ_FORMATS)
def test_broken_image_via_api(ext, photo, tmp_path):
    cut, junk = broken_files(tmp_path, photo, ext)
    with pytest.raises(UnsupportedFormat, match=f"not a readable {PIL_FORMAT[ext]} image"):
        read_image(junk)
    with pytest.raises(UnsupportedFormat, match="cannot read"):
        read_image(cut)


@pytest.mark.parametrize("model", ["ditn-real-x4", "tiny checkpoint"])
def test_broken_image_fails_before_the_engine_is_imported(model, photo, tmp_path, tiny_ditn_path):
    """A cut PNG (its header is fine): the image error comes, and the engine was never imported;
    with a registered model, not even torch was (a checkpoint path is read for its scale)."""
    cut, _ = broken_files(tmp_path, photo, "png")
    model = str(tiny_ditn_path) if model == "tiny checkpoint" else model
    code = (
        "import json, sys\n"
        "from vs_superres.cli import main\n"
        f"rc = main(['upscale', {str(cut)!r}, {str(tmp_path / 'out.png')!r}, '--model', {model!r}, '-q'])\n"
        "print(json.dumps({'rc': rc, 'torch': 'torch' in sys.modules,"
        " 'engine': 'vs_superres.runtime.upscaler' in sys.modules}))\n"
    )
    run, _ = run_child(code)
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result == {"rc": 2, "torch": model != "ditn-real-x4", "engine": False}, run.stderr
    assert "cannot read" in run.stderr and "truncated" in run.stderr
    assert leftovers(tmp_path, cut.name, "junk.png") == []


# ------------------------------------------------------------------------------- size limits
def test_bomb_is_refused_by_the_cli_without_allocating(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb_png(bomb, 20000)
    assert bomb.stat().st_size < 1_000_000
    code = (
        "import sys\n"
        "from vs_superres.cli import main\n"
        f"sys.exit(main(['upscale', {str(bomb)!r}, {str(tmp_path / 'out.png')!r}, '-q']))\n"
    )
    started = time.monotonic()
    run, peak_mb = run_child(code)
    assert run.returncode == 2, run.stderr
    assert time.monotonic() - started < 30
    assert "20000x20000 pixels (400 megapixels)" in run.stderr
    assert f"{MAX_PIXELS_ENV}=400000000" in run.stderr and "decompression bomb" in run.stderr
    assert peak_mb < 1024, f"the child reached {peak_mb:.0f} MB"
    assert leftovers(tmp_path, "bomb.png") == []


def test_bomb_is_refused_by_the_api_without_allocating(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb_png(bomb, 20000)
    tracemalloc.start()
    try:
        with pytest.raises(UnsupportedFormat, match="20000x20000"):
            read_image(bomb)
        info = probe_image(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (info.width, info.height, info.bit_depth, info.is_grey) == (20000, 20000, 1, True)
    assert peak < 20_000_000


def test_pixel_limit_is_configurable(photo, tmp_path, monkeypatch):
    src = tmp_path / "in.png"
    save_with_pillow(src, photo)
    with pytest.raises(UnsupportedFormat, match=r"40x24 pixels .*over the limit"):
        read_image(src, max_pixels=959)
    assert read_image(src, max_pixels=960)[0].shape == (24, 40, 3)
    monkeypatch.setenv(MAX_PIXELS_ENV, "500")
    with pytest.raises(UnsupportedFormat, match=f"{MAX_PIXELS_ENV}=960"):
        read_image(src)
    monkeypatch.setenv(MAX_PIXELS_ENV, "0")  # no limit
    assert read_image(src)[0].shape == (24, 40, 3)
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(InvalidOption, match=f"{MAX_PIXELS_ENV} must be a whole number"):
        read_image(src)
    assert DEFAULT_MAX_PIXELS == 2 * Image.MAX_IMAGE_PIXELS  # Pillow's own refusal threshold


def test_pixel_limit_on_the_cli(photo, tmp_path, monkeypatch, capsys, tiny_ditn_path):
    src = tmp_path / "in.webp"
    save_with_pillow(src, photo)
    monkeypatch.setenv(MAX_PIXELS_ENV, "100")
    assert upscale(src, tmp_path / "out.png", "--model", tiny_ditn_path) == 2
    assert "40x24 pixels" in capsys.readouterr().err
    assert leftovers(tmp_path, "in.webp") == []


def test_job_too_big_for_memory_is_refused_with_the_way_out(tmp_path, tiny_ditn_path):
    """Under the pixel limit (raised here), but x4 of 20000x20000 needs ~190 GB: refused before
    decoding, naming both sizes, and saying that --tile does not help."""
    bomb = tmp_path / "big.png"
    bomb_png(bomb, 20000)
    code = (
        "import sys\n"
        "from vs_superres.cli import main\n"
        f"sys.exit(main(['upscale', {str(bomb)!r}, {str(tmp_path / 'out.png')!r}, '--model', {str(tiny_ditn_path)!r},"
        " '--tile', '128', '-q']))\n"
    )
    run, peak_mb = run_child(code, {MAX_PIXELS_ENV: "0"})
    assert run.returncode == 2, run.stderr
    assert "20000x20000 -> 80000x80000" in run.stderr
    assert "GB is available" in run.stderr and "--tile does not help" in run.stderr
    assert "smaller input" in run.stderr
    assert peak_mb < 1024
    assert leftovers(tmp_path, "big.png") == []


def test_memory_estimate_message():
    with pytest.raises(UnsupportedFormat) as err:
        check_image_memory(12000, 12000, 4, model="ditn-real-x4", source="big.png", available=8 * 10**9)
    text = str(err.value)
    needed = image_job_bytes(12000, 12000, 4) / 1e9
    assert f"12000x12000 -> 48000x48000 with ditn-real-x4 needs about {needed:.1f} GB" in text
    assert "only 8.0 GB is available" in text
    check_image_memory(12000, 12000, 4, model="m", source="x", available=int(needed * 1e9) + 1)


# -------------------------------------------------------------------------------- orientation
@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("ext", ORIENTED_FORMATS)
def test_orientation_matches_pillow(ext, orientation, photo, tmp_path):
    src = tmp_path / f"in.{ext}"
    save_with_pillow(src, photo, orientation=orientation)
    rgb, info = read_image(src)
    with Image.open(src) as image:
        expected = np.asarray(ImageOps.exif_transpose(image).convert("RGB")).astype(np.float32) / 255
    np.testing.assert_array_equal(rgb, expected)
    assert (info.orientation, info.orientation_applied) == (orientation, orientation != 1)
    assert (info.height, info.width) == rgb.shape[:2]


def test_orientation_in_a_late_png_exif_chunk(photo, tmp_path):
    """PNG allows eXIf after the pixel data; it is found without decoding first."""
    src = tmp_path / "late.png"
    save_with_pillow(src, photo, orientation=8)
    data = src.read_bytes()
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        chunks.append(data[pos:pos + 12 + length])
        pos += 12 + length
    exif = [c for c in chunks if c[4:8] == b"eXIf"]
    rest = [c for c in chunks if c[4:8] != b"eXIf"]
    src.write_bytes(data[:8] + b"".join(rest[:-1] + exif + rest[-1:]))  # just before IEND
    assert [c[4:8] for c in rest[:2]] == [b"IHDR", b"IDAT"]
    rgb, info = read_image(src)
    assert info.orientation == 8
    np.testing.assert_array_equal(rgb, np.rot90(photo).astype(np.float32) / 255)


@pytest.mark.parametrize("orientation", [3, 6, 7])
def test_orientation_of_a_float_tiff_decoded_by_pillow(orientation, tmp_path):
    """Float TIFFs go through Pillow, which (since Pillow 13) turns TIFFs upright itself while
    loading: the orientation is applied once, not twice."""
    grey = np.arange(24 * 40, dtype=np.float32).reshape(24, 40) / 960
    exif = Image.Exif()
    exif[0x0112] = orientation
    src = tmp_path / "float.tif"
    Image.fromarray(grey, "F").save(src, exif=exif.tobytes())
    rgb, info = read_image(src)
    with Image.open(src) as image:
        expected = np.asarray(ImageOps.exif_transpose(image))
    assert (info.pixel_format, info.bit_depth, info.orientation) == ("F", 32, orientation)
    np.testing.assert_array_equal(rgb, np.repeat(expected[..., None], 3, axis=-1))


@pytest.mark.parametrize("ext", ORIENTED_FORMATS)
def test_cli_output_displays_like_the_input(ext, photo, tmp_path, tiny_ditn_path, capsys):
    """An input stored sideways with orientation 6 gives the same output as the upright picture,
    and the output carries no orientation tag."""
    src = tmp_path / f"sideways.{ext}"
    save_with_pillow(src, photo, orientation=6)
    upright_pixels, _ = read_image(src)
    reference = tmp_path / "upright.png"
    write_image(reference, upright_pixels)
    args = ("--model", tiny_ditn_path, "--device", "cpu")
    assert upscale(src, tmp_path / "a.png", *args) == 0
    assert upscale(reference, tmp_path / "b.png", *args) == 0
    capsys.readouterr()
    a, info = read_image(tmp_path / "a.png")
    b, _ = read_image(tmp_path / "b.png")
    assert (info.width, info.height) == (96, 160)  # 24x40 upright, x4
    np.testing.assert_array_equal(a, b)
    with Image.open(tmp_path / "a.png") as out:
        assert out.getexif().get(0x0112) is None


# -------------------------------------------------------------------------------------- ICC
@pytest.mark.parametrize("out_ext,bit_depth", [("png", 8), ("png", 16), ("tif", 8), ("tif", 16), ("jpg", 8)])
@pytest.mark.parametrize("in_ext", ["png", "jpg", "tif", "webp"])
def test_icc_profile_is_carried_by_the_api(in_ext, out_ext, bit_depth, photo, srgb_profile, tmp_path):
    src = tmp_path / f"in.{in_ext}"
    save_with_pillow(src, photo, icc=srgb_profile)
    rgb, info = read_image(src)
    assert info.icc_profile == srgb_profile and info.icc_note is None
    out = write_image(tmp_path / f"out.{out_ext}", rgb, bit_depth, icc_profile=info.icc_profile)
    with Image.open(out) as image:
        assert image.info.get("icc_profile") == srgb_profile
        image.load()  # the file stays readable with the profile in it
    back, back_info = read_image(out)
    assert back_info.icc_profile == srgb_profile and back_info.bit_depth == bit_depth
    if out_ext == "jpg":  # lossy: close on average
        assert np.abs(back - rgb).mean() < 0.01
    else:
        np.testing.assert_array_equal(back, rgb)


def test_no_icc_means_no_profile_chunk(photo, tmp_path):
    out = write_image(tmp_path / "plain.png", photo / np.float32(255))
    assert b"iCCP" not in out.read_bytes()
    assert read_image(out)[1].icc_profile is None


@pytest.mark.parametrize("out_ext", WRITE_FORMATS)
def test_icc_profile_is_carried_by_the_cli(out_ext, photo, srgb_profile, tmp_path, tiny_ditn_path, capsys):
    src = tmp_path / "in.png"
    save_with_pillow(src, photo, icc=srgb_profile)
    assert upscale(src, tmp_path / f"out.{out_ext}", "--model", tiny_ditn_path, "--device", "cpu") == 0, \
        capsys.readouterr().err
    with Image.open(tmp_path / f"out.{out_ext}") as image:
        assert image.info.get("icc_profile") == srgb_profile


def test_non_rgb_profile_is_dropped_with_a_warning(photo, srgb_profile, tmp_path, tiny_ditn_path, capsys, caplog):
    grey_profile = srgb_profile[:16] + b"GRAY" + srgb_profile[20:]
    assert icc_colour_space(grey_profile) == "GRAY"
    src = tmp_path / "in.png"
    save_with_pillow(src, photo, icc=grey_profile)
    _, info = read_image(src)
    assert info.icc_profile is None and "GRAY" in info.icc_note
    assert upscale(src, tmp_path / "out.png", "--model", tiny_ditn_path, "--device", "cpu") == 0
    assert "ICC profile describes GRAY data" in messages(capsys, caplog)
    with Image.open(tmp_path / "out.png") as image:
        assert "icc_profile" not in image.info
    with pytest.raises(SuperResError, match="not an RGB ICC profile"):
        write_image(tmp_path / "x.png", photo / np.float32(255), icc_profile=grey_profile)


# -------------------------------------------------------------------------------- bit depth
@pytest.mark.parametrize("ext", ["jpg", "jpeg"])
def test_bit_depth_16_to_jpeg_is_refused_before_any_work(ext, photo, tmp_path, capsys):
    src = tmp_path / "in.png"
    save_with_pillow(src, photo)
    code = upscale(src, tmp_path / f"out.{ext}", "--bit-depth", "16", "--model", tmp_path / "no_such_model.pth")
    err = capsys.readouterr().err
    assert code == 2
    assert "--bit-depth 16" in err and "JPEG stores 8 bits" in err and ".png or .tif" in err
    assert leftovers(tmp_path, "in.png") == []


def test_sixteen_bit_input_to_jpeg_says_it_writes_eight(astronaut, tmp_path, tiny_ditn_path, capsys, caplog):
    src = tmp_path / "deep.png"
    write_image(src, astronaut[:24, :40], bit_depth=16)
    assert upscale(src, tmp_path / "out.jpg", "--model", tiny_ditn_path, "--device", "cpu") == 0
    capsys.readouterr()
    notes = [r.getMessage() for r in caplog.records if "JPEG stores 8" in r.getMessage()]
    assert len(notes) == 1 and "\n" not in notes[0]
    assert "16-bit samples" in notes[0] and "out.jpg is written with 8 bits" in notes[0]
    with Image.open(tmp_path / "out.jpg") as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (160, 96))


# --------------------------------------------------------------------------- writer memory
def test_writer_makes_no_full_size_float_copy(tmp_path):
    """Converting to codes a band at a time, straight into the encoder's frame: the writer's
    Python-visible peak is a fraction of the float image's own size (the old path made four
    full-size float copies, then an integer one)."""
    ramp = np.linspace(-0.1, 1.1, 800, dtype=np.float32)  # out of range at both ends too
    image = np.stack([np.broadcast_to(ramp, (600, 800)), np.broadcast_to(ramp[::-1], (600, 800)),
                      np.full((600, 800), 0.25, np.float32)])  # [3, H, W]
    size = image.nbytes
    tracemalloc.start()
    try:
        write_image(tmp_path / "w.tif", image, 16)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.4 * size, f"peak {peak / size:.2f} of the float image"
    back, _ = read_image(tmp_path / "w.tif")
    expected = np.rint(np.clip(image.transpose(1, 2, 0), 0, 1) * np.float32(65535)) / np.float32(65535)
    np.testing.assert_array_equal(back, expected.astype(np.float32))


def test_writer_accepts_a_torch_tensor_and_refuses_nan(tmp_path):
    import torch

    image = torch.rand(3, 16, 24)
    write_image(tmp_path / "t.png", image)
    via_numpy = tmp_path / "n.png"
    write_image(via_numpy, image.permute(1, 2, 0).numpy().copy())
    assert (tmp_path / "t.png").read_bytes() == via_numpy.read_bytes()
    image[1, 15, 23] = float("nan")  # in the last band
    with pytest.raises(SuperResError, match="NaN or infinite"):
        write_image(tmp_path / "nan.png", image)
    assert not (tmp_path / "nan.png").exists()


def test_icc_survives_in_memory_round_trip(srgb_profile):
    """The embedded bytes are the profile itself, not a re-serialisation."""
    from vs_superres.media.icc import png_with_icc, tiff_with_icc

    buffer = io.BytesIO()
    Image.new("RGB", (3, 2), (10, 20, 30)).save(buffer, "PNG")
    with Image.open(io.BytesIO(png_with_icc(buffer.getvalue(), srgb_profile))) as image:
        assert image.info["icc_profile"] == srgb_profile
    buffer = io.BytesIO()
    Image.new("RGB", (3, 2), (10, 20, 30)).save(buffer, "TIFF")
    with Image.open(io.BytesIO(tiff_with_icc(buffer.getvalue(), srgb_profile))) as image:
        assert image.info["icc_profile"] == srgb_profile
        assert image.getpixel((2, 1)) == (10, 20, 30)
