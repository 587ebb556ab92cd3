"""The engine's out-of-memory back-off, driven by ``oom-probe-x2`` (tests/families/oom_probe.py):
the probe fails with the allocator's own error on large tiles, and the engine halves its tiles
until they fit, with the same pixels as when that tile size is asked for."""

from __future__ import annotations

import logging

import pytest
import torch
from families import oom_probe

from vs_superres import SuperResError, Upscaler
from vs_superres.numerics.oom import is_out_of_memory
from vs_superres.runtime.registry import get_model
from vs_superres.runtime.spatial import MIN_TILE

RETRY = "out of memory: retrying oom-probe-x2 with 32x32 tiles"


@pytest.fixture
def frame() -> torch.Tensor:
    """A 64x48 image: larger than the probe's limit, so a whole-image tile runs out of memory."""
    return torch.rand(1, 3, 48, 64)


def upscale(frame: torch.Tensor, torch_threads, **kwargs) -> torch.Tensor:
    with torch_threads(1):
        with Upscaler("oom-probe-x2", device="cpu", **kwargs) as up:
            return up.upscale(frame)


def test_the_probe_raises_the_cpu_allocators_error_only_on_large_tiles():
    assert oom_probe.TILE_LIMIT >= MIN_TILE  # else no tile the engine tries could fit
    model = oom_probe.build(get_model("oom-probe-x2").config)
    with pytest.raises(RuntimeError) as err:
        model(torch.rand(1, 3, 8, oom_probe.TILE_LIMIT + 1))
    assert "can't allocate memory" in str(err.value) and is_out_of_memory(err.value)
    x = torch.rand(1, 3, oom_probe.TILE_LIMIT, oom_probe.TILE_LIMIT)
    want = torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
    assert torch.equal(model(x), want)


@pytest.mark.parametrize("tile", [0, 256, None], ids=["whole-image", "large", "auto"])
def test_engine_backs_off_to_tiles_that_fit(frame, tile, torch_threads, caplog):
    with caplog.at_level(logging.WARNING, logger="vs_superres"):
        got = upscale(frame, torch_threads, tile=tile)
    assert [r.getMessage() for r in caplog.records if "out of memory" in r.getMessage()] == [RETRY]
    assert got.shape == (1, 3, 96, 128)
    assert torch.equal(got, upscale(frame, torch_threads, tile=32))
    # the tile seams show: one 64x48 bicubic pass (what fitting memory would give) differs
    whole = torch.nn.functional.interpolate(frame, scale_factor=2, mode="bicubic", align_corners=False).clamp(0, 1)
    assert (got - whole).abs().max() > 0.01


def test_tiles_that_fit_need_no_back_off(frame, torch_threads, caplog):
    with caplog.at_level(logging.WARNING, logger="vs_superres"):
        upscale(frame, torch_threads, tile=32)
    assert not [r for r in caplog.records if "out of memory" in r.getMessage()]


def test_out_of_memory_at_the_smallest_tile_names_it_and_the_fixes(frame, torch_threads, monkeypatch):
    monkeypatch.setattr(oom_probe, "TILE_LIMIT", MIN_TILE - 1)
    with pytest.raises(SuperResError) as err:
        upscale(frame, torch_threads, tile=0)
    msg = str(err.value)
    assert f"out of memory even with {MIN_TILE}x{MIN_TILE} tiles (RuntimeError)" in msg
    assert "dtype=fp16 or bf16" in msg and "device=cpu" in msg
