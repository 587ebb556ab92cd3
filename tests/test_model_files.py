"""A checkpoint file given as the model (``--model my.safetensors``).

Shapes describe a DITN checkpoint; our own safetensors formats (PatchScaler, UltraVSR) are
recognised by their ``format`` metadata and run as the family's default model with the file
pinned as its ``checkpoint`` weight. The output must be the registered model's with the same
file given as ``checkpoint=``.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

from vs_superres import InvalidOption, Upscaler
from vs_superres.numerics.checkpoints import safetensors_metadata
from vs_superres.runtime.loading import resolve_model
from vs_superres.runtime.registry import default_registry

pytestmark = pytest.mark.torch_threads(1)



def photo(size: int = 32) -> torch.Tensor:
    from skimage import data

    img = data.astronaut()[::8, ::8][8:8 + size, 8:8 + size].astype(np.float32) / 255.0
    return torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0).contiguous()


def test_family_formats_are_what_their_checkpoints_write():
    from vs_superres.models.patchscaler.checkpoint import FORMAT as PATCHSCALER
    from vs_superres.models.ultravsr.checkpoint import SAFETENSORS_FORMAT as ULTRAVSR

    registry = default_registry()
    assert registry.family("patchscaler").checkpoint_format == PATCHSCALER
    assert registry.family("ultravsr").checkpoint_format == ULTRAVSR


def test_metadata_is_read_from_the_header_alone(tmp_path, patchscaler_release):
    checkpoint, _ = patchscaler_release
    assert safetensors_metadata(checkpoint)["format"] == "vs-superres/patchscaler"
    for name, data in (("empty.safetensors", b""), ("text.safetensors", b"not a safetensors file"),
                       ("huge.safetensors", struct.pack("<Q", 1 << 40))):
        (tmp_path / name).write_bytes(data)
        assert safetensors_metadata(tmp_path / name) == {}
    header = json.dumps({"__metadata__": {"format": "x"}}).encode()
    (tmp_path / "tiny.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    assert safetensors_metadata(tmp_path / "tiny.safetensors") == {"format": "x"}


def test_patchscaler_checkpoint_as_the_model(patchscaler_release):
    checkpoint, autoencoder = patchscaler_release
    desc, state_dict = resolve_model(str(checkpoint))
    assert state_dict is None  # the family loads its own file
    assert (desc.family, desc.name) == ("patchscaler", checkpoint.stem)
    pinned = [wf for wf in desc.weights if wf.option == "checkpoint"]
    assert [wf.pinned for wf in pinned] == [str(checkpoint)]
    x = photo()
    by_file = Upscaler(str(checkpoint), autoencoder=str(autoencoder), device="cpu").upscale(x)
    registered = Upscaler("patchscaler-x4", checkpoint=str(checkpoint), autoencoder=str(autoencoder),
                          device="cpu").upscale(x)
    assert by_file.shape == (1, 3, 128, 128)
    assert torch.equal(by_file, registered)


def test_patchscaler_checkpoint_given_twice_is_refused(patchscaler_release):
    checkpoint, autoencoder = patchscaler_release
    with pytest.raises(InvalidOption, match=r"is the patchscaler checkpoint already; drop checkpoint="):
        Upscaler(str(checkpoint), checkpoint=str(checkpoint), autoencoder=str(autoencoder), device="cpu")


def test_patchscaler_checkpoint_as_the_cli_model(patchscaler_release, tmp_path):
    from PIL import Image

    checkpoint, autoencoder = patchscaler_release
    source = tmp_path / "in.png"
    Image.fromarray((photo()[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(source)
    out = tmp_path / "out.png"
    proc = subprocess.run([sys.executable, "-m", "vs_superres.cli", "upscale", str(source), str(out),
                           "--model", str(checkpoint), "--device", "cpu", "-O", f"autoencoder={autoencoder}"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert Image.open(out).size == (128, 128)


def test_ultravsr_safetensors_as_the_model(tmp_path):
    from vs_superres.models.ultravsr import checkpoint as ckpt_mod
    from vs_superres.models.ultravsr.tiny import write_tiny_release

    base, official = write_tiny_release(tmp_path / "release", seed=0)
    converted = tmp_path / "mine.safetensors"
    ckpt_mod.save_safetensors_checkpoint(ckpt_mod.read_checkpoint(official), converted)
    desc, _ = resolve_model(str(converted))
    assert (desc.family, desc.kind, desc.window) == ("ultravsr", "video", 30)
    frames = photo(16).expand(2, -1, -1, -1).contiguous()
    by_file = Upscaler(str(converted), base=str(base), strength=0.3, device="cpu").upscale(frames)
    registered = Upscaler("ultravsr", checkpoint=str(converted), base=str(base), strength=0.3,
                          device="cpu").upscale(frames)
    assert torch.equal(by_file, registered)


def test_unknown_safetensors_format_is_read_by_shapes(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"format": "someone-else/model"})
    with pytest.raises(InvalidOption, match="does not match any known architecture"):
        resolve_model(str(path))
