"""Training data: random HR crops from a folder of images, degraded LR partners, and a pool of
pre-encoded latent pairs.

A folder's images are found recursively (``.png .jpg .jpeg .bmp .webp .tif .tiff``); when they sit
in sub-folders, each sub-folder is a texture class for the classifier T (DTD's layout), otherwise
every image is its own class. Encoding through the autoencoder dominates the cost of a step, so
training draws its batches from a pool of encoded ``(y_LR, x_HR, label)`` triples that is
rebuilt every ``refresh`` steps.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from vs_superres.contracts.errors import SuperResError
from vs_superres.numerics.resample import upscale_bicubic

from vs_superres.models.patchscaler.autoencoder import encode
from vs_superres.models.patchscaler.degradations import DEFAULT, DegradationConfig, degrade

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
#: scikit-image's bundled real photographs (no download needed), for smoke training and tests.
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")


def write_skimage_photos(folder: str | os.PathLike, names: Sequence[str] = SKIMAGE_PHOTOS) -> Path:
    """Save scikit-image's bundled photographs as PNGs in ``folder`` (one class per photo)."""
    from PIL import Image
    from skimage import data

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        img = getattr(data, name)()
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        Image.fromarray(img[..., :3].astype(np.uint8)).save(folder / f"{name}.png")
    return folder


class HRFolder:
    """Every image under ``root`` in memory as ``uint8 [3, H, W]`` (a quarter of float32's size), with class labels."""

    def __init__(self, root: str | os.PathLike, min_side: int):
        from PIL import Image

        root = Path(root)
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise SuperResError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {root}; point --data at a folder of "
                                "high-resolution photographs")
        parents = sorted({p.parent for p in files})
        by_folder = len(parents) > 1
        self.class_names = [str(p.relative_to(root)) for p in parents] if by_folder else [p.stem for p in files]
        self.images: list[torch.Tensor] = []
        self.labels: list[int] = []
        for i, p in enumerate(files):
            img = torch.from_numpy(np.array(Image.open(p).convert("RGB"), dtype=np.uint8)).permute(2, 0, 1).contiguous()
            if min(img.shape[-2:]) < min_side:  # small images are enlarged rather than dropped
                s = min_side / min(img.shape[-2:])
                big = F.interpolate(img[None].float(), scale_factor=s, mode="bicubic", align_corners=False)[0]
                img = big.round().clamp(0, 255).to(torch.uint8)
            self.images.append(img)
            self.labels.append(parents.index(p.parent) if by_folder else i)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def random_crops(self, count: int, size: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``count`` random ``size x size`` crops (random flips) ``[count, 3, size, size]`` and their labels."""
        crops, labels = [], []
        for _ in range(count):
            i = int(torch.randint(len(self.images), (), generator=g))
            img = self.images[i]
            top = int(torch.randint(img.shape[-2] - size + 1, (), generator=g))
            left = int(torch.randint(img.shape[-1] - size + 1, (), generator=g))
            crop = img[:, top:top + size, left:left + size].float() / 255.0
            if float(torch.rand((), generator=g)) < 0.5:
                crop = crop.flip(-1)
            crops.append(crop)
            labels.append(self.labels[i])
        return torch.stack(crops), torch.tensor(labels)


@torch.no_grad()
def encode_pairs(vae, hr: torch.Tensor, g: torch.Generator, scale: int = 4, cfg: DegradationConfig = DEFAULT,
                 device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """HR crops -> ``(y_LR, x_HR)`` latents: ``E(bicubic_x4(degrade(HR)))`` and ``E(HR)``; one degradation draw per crop."""
    lr = torch.cat([degrade(hr[i:i + 1], g, cfg) for i in range(hr.shape[0])])
    up = upscale_bicubic(lr.to(device), scale).clamp(0, 1)
    return encode(vae, up), encode(vae, hr.to(device))


class LatentPool:
    """A pool of encoded ``(y_LR, x_HR, label)`` training triples, rebuilt every ``refresh`` draws."""

    def __init__(self, folder: HRFolder, vae, *, size: int, crop: int, refresh: int, g: torch.Generator,
                 device: torch.device | str = "cpu", cfg: DegradationConfig = DEFAULT, scale: int = 4,
                 encode_batch: int = 8):
        self.folder, self.vae, self.size, self.crop, self.refresh = folder, vae, size, crop, refresh
        self.g, self.device, self.cfg, self.scale, self.encode_batch = g, device, cfg, scale, encode_batch
        self._draws = 0
        self._fill()

    def _fill(self) -> None:
        ys, xs, labels = [], [], []
        for lo in range(0, self.size, self.encode_batch):
            hr, lab = self.folder.random_crops(min(self.encode_batch, self.size - lo), self.crop, self.g)
            y, x = encode_pairs(self.vae, hr, self.g, self.scale, self.cfg, self.device)
            ys.append(y)
            xs.append(x)
            labels.append(lab)
        self.y_lr, self.x_hr, self.labels = torch.cat(ys), torch.cat(xs), torch.cat(labels).to(self.device)

    def batch(self, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.refresh and self._draws and self._draws % self.refresh == 0:
            self._fill()
        self._draws += 1
        idx = torch.randint(self.size, (count,), generator=self.g).to(self.device)
        return self.y_lr[idx], self.x_hr[idx], self.labels[idx]


def random_latent_patches(tensors: Sequence[torch.Tensor], patch: int, g: torch.Generator) -> list[torch.Tensor]:
    """The same random ``patch x patch`` window (one per sample) from each ``[B, c, h, w]`` tensor."""
    b, _, h, w = tensors[0].shape
    if min(h, w) < patch:
        raise SuperResError(f"training crops give a {h}x{w} latent, smaller than V = {patch}; use --crop >= {8 * patch}")
    out: list[list[torch.Tensor]] = [[] for _ in tensors]
    for i in range(b):
        top = int(torch.randint(h - patch + 1, (), generator=g))
        left = int(torch.randint(w - patch + 1, (), generator=g))
        for k, t in enumerate(tensors):
            out[k].append(t[i, :, top:top + patch, left:left + patch])
    return [torch.stack(o) for o in out]
