"""CLIP with the ResNet image tower (OpenAI "RN50" layout), for CLIP-IQA in UltraVSR's DRS.

An independent implementation written from the published architecture (Radford et al.,
"Learning Transferable Visual Models From Natural Language Supervision", 2021). Parameter
names follow the OpenAI state dict, so a local RN50 state dict loads with ``strict=True``::

    visual.conv1/bn1/conv2/bn2/conv3/bn3        3-conv stem (stride 2, then 2x2 avg pool)
    visual.layer{1..4}.{i}.conv1..bn3,
        .downsample.{0: conv, 1: bn}            bottlenecks, anti-aliased (avg pool) strides
    visual.attnpool.positional_embedding,
        .q_proj, .k_proj, .v_proj, .c_proj      attention pooling
    transformer.resblocks.{i}.attn.in_proj_weight/in_proj_bias/out_proj,
        .ln_1, .mlp.c_fc, .mlp.c_proj, .ln_2    causal pre-LN text transformer, QuickGELU
    token_embedding, positional_embedding, ln_final, text_projection, logit_scale

Image tower, for an input ``[N, 3, H, W]`` (normalised with the OpenAI mean/std)::

    stem: conv3x3 s2 -> conv3x3 -> conv3x3 -> avgpool 2     [N, w, H/4, W/4]
    layer1..layer4 (4x expansion, stride 1, 2, 2, 2)        [N, 32w, H/32, W/32]
    attention pooling: query = mean token, keys/values = mean token + all positions
                       -> c_proj                             [N, embed_dim]

CLIP-IQA (and pyiqa's ``clipiqa``) pools *without* the positional embedding, so the tower
works at any input size (at least 32 px per side) without resizing; the learned
positional embedding is kept only so that state dicts round-trip. Only the pooled token is
computed (one query instead of ``HW + 1``): the same value as the first output of full
multi-head attention, at a fraction of the memory for large frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from vs_superres.contracts.config import FrozenConfig
from vs_superres.contracts.errors import SuperResError

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# Entries of state dicts taken from the OpenAI TorchScript archive that are not parameters.
_NON_PARAMETER_KEYS = ("input_resolution", "context_length", "vocab_size")


@dataclass(frozen=True)
class ClipConfig(FrozenConfig):
    """Hyperparameters of a ResNet-tower CLIP; enough to rebuild the network (JSON round trip
    through ``to_dict``/``from_dict``, like every config of the project)."""

    embed_dim: int = 1024
    vision_layers: tuple[int, int, int, int] = (3, 4, 6, 3)
    vision_width: int = 64
    image_resolution: int = 224  # only fixes the shape of the (unused) pooling pos. embedding
    context_length: int = 77
    vocab_size: int = 49408
    text_width: int = 512
    text_heads: int = 8
    text_layers: int = 12

    @property
    def vision_heads(self) -> int:
        return self.vision_width * 32 // 64

    @property
    def pool_grid(self) -> int:
        return self.image_resolution // 32



RN50_CONFIG = ClipConfig()
"""OpenAI CLIP RN50 (the backbone of pyiqa's ``clipiqa``)."""

TINY_CONFIG = ClipConfig(
    embed_dim=32,
    vision_layers=(1, 1, 1, 1),
    vision_width=8,
    image_resolution=64,
    context_length=77,
    vocab_size=49408,
    text_width=64,
    text_heads=1,
    text_layers=1,
)
"""A few-MB configuration with the real context length and vocabulary, for tests. Like every
OpenAI CLIP it has ``text_width // 64`` text heads, so it round-trips through a state dict."""


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> (avg pool if strided) -> 1x1 (4x channels), plus a pooled shortcut."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1):
        super().__init__()
        out_channels = planes * self.expansion
        self.stride = stride
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.downsample: nn.Sequential | None = None
        if stride > 1 or in_channels != out_channels:
            # Keys downsample.0 (conv) and downsample.1 (bn); the pooling runs in forward().
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
            )

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, self.stride) if self.stride > 1 else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(self._pool(y)))
        shortcut = x if self.downsample is None else self.downsample(self._pool(x))
        return F.relu(y + shortcut)


class AttentionPool2d(nn.Module):
    """Multi-head attention of the mean token over [mean token, all positions]."""

    def __init__(self, grid: int, embed_dim: int, heads: int, output_dim: int):
        super().__init__()
        self.heads = heads
        self.positional_embedding = nn.Parameter(
            torch.randn(grid * grid + 1, embed_dim) / embed_dim**0.5
        )
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.c_proj = nn.Linear(embed_dim, output_dim)

    def forward(self, x: torch.Tensor, use_positional_embedding: bool = False) -> torch.Tensor:
        """``x``: ``[N, C, h, w]`` -> ``[N, output_dim]``."""
        n, c = x.shape[:2]
        tokens = x.flatten(2).transpose(1, 2)  # [N, hw, C]
        tokens = torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1)  # [N, hw+1, C]
        if use_positional_embedding:
            if tokens.shape[1] != self.positional_embedding.shape[0]:
                raise SuperResError(
                    f"the pooling positional embedding covers "
                    f"{self.positional_embedding.shape[0] - 1} positions but the feature map "
                    f"has {tokens.shape[1] - 1}; pool without it "
                    "(use_positional_embedding=False) for inputs of other sizes"
                )
            tokens = tokens + self.positional_embedding.to(tokens.dtype)
        head_dim = c // self.heads

        def split(t: torch.Tensor) -> torch.Tensor:  # [N, L, C] -> [N, heads, L, head_dim]
            return t.view(n, -1, self.heads, head_dim).transpose(1, 2)

        q = split(self.q_proj(tokens[:, :1]))
        k = split(self.k_proj(tokens))
        v = split(self.v_proj(tokens))
        pooled = F.scaled_dot_product_attention(q, k, v)  # [N, heads, 1, head_dim]
        return self.c_proj(pooled.transpose(1, 2).reshape(n, c))


class ModifiedResNet(nn.Module):
    """CLIP's ResNet image tower: 3-conv stem, anti-aliased bottlenecks, attention pooling."""

    def __init__(self, config: ClipConfig):
        super().__init__()
        width = config.vision_width
        self.conv1 = nn.Conv2d(3, width // 2, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width // 2)
        self.conv2 = nn.Conv2d(width // 2, width // 2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width // 2)
        self.conv3 = nn.Conv2d(width // 2, width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        channels = width
        stages = []
        for i, blocks in enumerate(config.vision_layers):
            planes = width * 2**i
            stride = 1 if i == 0 else 2
            stage = [Bottleneck(channels, planes, stride)]
            channels = planes * Bottleneck.expansion
            stage += [Bottleneck(channels, planes) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.attnpool = AttentionPool2d(
            config.pool_grid, channels, config.vision_heads, config.embed_dim
        )

    def forward(self, x: torch.Tensor, use_positional_embedding: bool = False) -> torch.Tensor:
        x = x.to(self.conv1.weight.dtype)
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        x = F.avg_pool2d(x, 2)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.attnpool(x, use_positional_embedding)


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the input dtype (as CLIP does for fp16)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


class TextMlp(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.c_fc = nn.Linear(width, 4 * width)
        self.c_proj = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c_fc(x)
        return self.c_proj(h * torch.sigmoid(1.702 * h))  # QuickGELU


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_1 = LayerNorm(width)
        self.mlp = TextMlp(width)
        self.ln_2 = LayerNorm(width)

    def forward(self, x: torch.Tensor, causal_mask: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=causal_mask)[0]
        return x + self.mlp(self.ln_2(x))


class TextTransformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int):
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualAttentionBlock(width, heads) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        mask = torch.full((length, length), float("-inf"), device=x.device, dtype=x.dtype).triu_(1)
        for block in self.resblocks:
            x = block(x, mask)
        return x


class CLIP(nn.Module):
    """ResNet-tower CLIP. Images in: normalised ``[N, 3, H, W]``; text in: token ids."""

    def __init__(self, config: ClipConfig = RN50_CONFIG):
        super().__init__()
        self.config = config
        self.visual = ModifiedResNet(config)
        self.transformer = TextTransformer(config.text_width, config.text_layers, config.text_heads)
        self.token_embedding = nn.Embedding(config.vocab_size, config.text_width)
        self.positional_embedding = nn.Parameter(
            torch.randn(config.context_length, config.text_width) * 0.01
        )
        self.ln_final = LayerNorm(config.text_width)
        self.text_projection = nn.Parameter(
            torch.randn(config.text_width, config.embed_dim) * config.text_width**-0.5
        )
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_image(
        self, images: torch.Tensor, use_positional_embedding: bool = False
    ) -> torch.Tensor:
        """``[N, 3, H, W]`` normalised with ``OPENAI_CLIP_MEAN/STD`` -> ``[N, embed_dim]``."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise SuperResError(f"CLIP images must be [N, 3, H, W]; got {tuple(images.shape)}")
        if min(images.shape[-2:]) < 32:
            raise SuperResError(
                f"CLIP's ResNet tower needs images of at least 32x32 pixels; got "
                f"{images.shape[-1]}x{images.shape[-2]}"
            )
        return self.visual(images, use_positional_embedding)

    def encode_text(self, token_ids: torch.Tensor) -> torch.Tensor:
        """``[M, context_length]`` token ids (end token = largest id) -> ``[M, embed_dim]``."""
        if token_ids.ndim != 2 or token_ids.shape[1] != self.config.context_length:
            raise SuperResError(
                f"token ids must be [M, {self.config.context_length}] (padded with zeros); "
                f"got {tuple(token_ids.shape)}"
            )
        dtype = self.text_projection.dtype
        x = self.token_embedding(token_ids).to(dtype) + self.positional_embedding.to(dtype)
        x = self.ln_final(self.transformer(x))
        end = token_ids.argmax(dim=-1)  # the end-of-text token has the largest id
        return x[torch.arange(x.shape[0], device=x.device), end] @ self.text_projection


def normalize_images(images: torch.Tensor) -> torch.Tensor:
    """Map ``[N, 3, H, W]`` RGB in [0, 1] to CLIP's input normalisation (no resizing)."""
    mean = torch.tensor(OPENAI_CLIP_MEAN, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_CLIP_STD, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images - mean) / std


def config_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> ClipConfig:
    """Read a :class:`ClipConfig` back from the shapes and key names of a state dict.

    Head counts are not stored in a state dict; as in OpenAI's release they are
    ``text_width // 64`` (text) and ``vision_width * 32 // 64`` (pooling).
    """
    if "visual.proj" in state_dict or "visual.class_embedding" in state_dict:
        raise SuperResError(
            "this CLIP state dict has a vision-transformer image tower; CLIP-IQA here needs a "
            "ResNet tower (e.g. OpenAI RN50)"
        )
    required = (
        "visual.layer1.0.conv1.weight",
        "visual.attnpool.positional_embedding",
        "text_projection",
        "positional_embedding",
        "token_embedding.weight",
        "ln_final.weight",
    )
    missing = [k for k in required if k not in state_dict]
    if missing:
        raise SuperResError(
            f"not an OpenAI-layout CLIP state dict: missing {', '.join(missing)}. Expected the "
            "plain state dict of a ResNet CLIP such as RN50 (keys visual.*, transformer.*, ...)"
        )

    def count(prefix: str, position: int) -> int:
        return len({k.split(".")[position] for k in state_dict if k.startswith(prefix)})

    pool_tokens = state_dict["visual.attnpool.positional_embedding"].shape[0]
    grid = round((pool_tokens - 1) ** 0.5)
    text_width = state_dict["ln_final.weight"].shape[0]
    return ClipConfig(
        embed_dim=state_dict["text_projection"].shape[1],
        vision_layers=(count("visual.layer1.", 2), count("visual.layer2.", 2), count("visual.layer3.", 2), count("visual.layer4.", 2)),
        vision_width=state_dict["visual.layer1.0.conv1.weight"].shape[0],
        image_resolution=grid * 32,
        context_length=state_dict["positional_embedding"].shape[0],
        vocab_size=state_dict["token_embedding.weight"].shape[0],
        text_width=text_width,
        text_heads=text_width // 64,
        text_layers=count("transformer.resblocks.", 2),
    )


def clean_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the non-parameter entries some OpenAI exports carry, keep everything else."""
    return {k: v for k, v in state_dict.items() if k not in _NON_PARAMETER_KEYS}


def clip_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> CLIP:
    """Build a float32 :class:`CLIP` in eval mode from an OpenAI-layout state dict (strict)."""
    state_dict = clean_state_dict(state_dict)
    config = config_from_state_dict(state_dict)
    with torch.device("meta"):
        model = CLIP(config)
    try:
        model.load_state_dict(state_dict, strict=True, assign=True)
    except RuntimeError as e:
        raise SuperResError(
            f"the CLIP state dict does not match the {config} layout it describes: "
            f"{str(e).splitlines()[0][:300]}"
        ) from None
    # (BatchNorm supplies a missing num_batches_tracked itself, so exports without it load.)
    return model.float().eval()
