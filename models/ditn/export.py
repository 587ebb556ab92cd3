"""DITN's deployment form and its ONNX export (the deployment path the authors announced).

:class:`DeployedDITN` computes what :class:`~.arch.DITN` computes, arranged so that a graph
traced from it runs at any input size in ONNX Runtime, OpenVINO and TensorRT:

- **no normalisation op**: the release already replaced LayerNorm by ``Tanh`` followed by a
  1x1 conv (``conv1``/``conv2``); the graph holds ``Tanh`` and convolutions only;
- **the 16 back-to-back linear pairs folded into one map each** (exact in real arithmetic:
  no non-linearity between them; only the float rounding changes): in every ITL
  ``conv1 -> attn.qkv`` and ``conv2 -> ffn.project_in``, in every SAL ``conv1 ->
  SDA.proj_first`` and ``conv2 -> ffn.project_in`` (4 ITLs + 4 SALs in the release). The
  SDA's per-channel ``scale`` is folded into ``proj_last`` as well (a 1x1 map followed by a
  per-channel product). Nothing else is folded: every other pair has a non-linearity
  (GELU, the gating product, the softmax, Tanh) or a spatial kernel between its maps;
- **shapes follow the input**: the reflect padding to the 8-pixel patch grid is a ``Gather``
  with indices computed from the input's height and width (the release's ``F.pad`` loop, as a
  periodic mirror, the same values for every size, :func:`mirror_indices`); the unfold into
  patches and the fold back take their sizes from the traced tensor (the graph's ``Shape``),
  and the attention reshapes name only the static channel and patch sizes, with ``-1`` for the
  number of patches. (The release's ``x.data.shape`` freezes the export size into every
  ``Reshape``, which is why a naive export fails at any other size.)

:func:`export_onnx` traces it into an ONNX graph: one input ``input`` ``[1, 3, H, W]`` float32
RGB in [0, 1], one output ``output`` ``[1, 3, s*H, s*W]`` float32 (not clamped), opset
:data:`OPSET`; ``fp16`` computes in half precision inside the graph (the input and output stay
float32, so the same clip formats work); ``static=(W, H)`` fixes the size (TensorRT engines,
fixed-tile pipelines). The runtime (``vs_superres/runtime/exported.py``) checks the bytes
(``onnx.checker``, strict shape inference) and writes them atomically.
"""

from __future__ import annotations

import copy
import os
import tempfile
import warnings
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from vs_superres.contracts.errors import SuperResError
from vs_superres.models.ditn.arch import DITN
from vs_superres.models.ditn.family import DITNConfig

#: ONNX Runtime >= 1.14, OpenVINO >= 2023 and TensorRT 8.6/10 all read opset 17 (vs-mlrt's own
#: models use 11-17); nothing in DITN needs a newer operator.
OPSET = 17
INPUT, OUTPUT = "input", "output"
#: The trace's example size: not a multiple of the patch, so the padding path is recorded.
_TRACE_SIZE = (20, 28)


def _linear(module: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W [out, in], b [out])`` of a 1x1 conv or a Linear (a zero bias where it has none)."""
    w = module.weight.detach().reshape(module.weight.shape[0], -1).double()
    b = module.bias.detach().double() if module.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    return w, b


def _fold(first: Any, second: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``second(first(x))`` as one map: ``W2 (W1 x + b1) + b2 = (W2 W1) x + (W2 b1 + b2)``,
    computed in float64 so the folded weights carry no extra rounding."""
    w1, b1 = _linear(first)
    w2, b2 = _linear(second)
    return w2 @ w1, w2 @ b1 + b2


def _conv1x1(w: torch.Tensor, b: torch.Tensor | None) -> nn.Conv2d:
    conv = nn.Conv2d(w.shape[1], w.shape[0], kernel_size=1, bias=b is not None)
    with torch.no_grad():
        conv.weight.copy_(w.float().reshape(*w.shape, 1, 1))
        if conv.bias is not None and b is not None:
            conv.bias.copy_(b.float())
    return conv


def _copy(module: Any) -> Any:
    """A module of its own with the same weights (a depthwise or 3x3 conv kept as it is)."""
    return copy.deepcopy(module)


class _GatedFFN(nn.Module):
    """The feed-forward with its "norm" conv folded into ``project_in``: ``[B, C, h, w]``."""

    def __init__(self, norm: Any, ffn: Any) -> None:
        super().__init__()
        self.project_in = _conv1x1(*_fold(norm, ffn.project_in))
        self.dwconv = _copy(ffn.dwconv)
        self.project_out = _copy(ffn.project_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.dwconv(self.project_in(torch.tanh(x))).chunk(2, dim=1)
        return self.project_out(F.gelu(gate) * value)


class _DeployedITL(nn.Module):
    """An ITL on a batch of patches ``[B, C, p, p]`` (B = patches, whatever their number)."""

    def __init__(self, itl: Any, patch: int) -> None:
        super().__init__()
        dim = itl.conv1.weight.shape[0]
        self.dim, self.tokens = dim, patch * patch
        self.qkv = _conv1x1(*_fold(itl.conv1, itl.attn.qkv))  # Linear over the channels = 1x1 conv
        self.temperature = nn.Parameter(itl.attn.temperature.detach().clone().reshape(1, 1, 1))
        self.project_out = _copy(itl.attn.project_out)
        self.ffn = _GatedFFN(itl.conv2, itl.ffn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, side = self.dim, x.shape[-1]
        qkv = self.qkv(torch.tanh(x)).reshape(-1, 3 * c, self.tokens)  # [B, 3C, L]
        q, k, v = qkv.chunk(3, dim=1)
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attention = (q @ k.transpose(1, 2) * self.temperature).softmax(dim=-1)  # [B, C, C]
        x = x + self.project_out((attention @ v).reshape(-1, c, side, side))
        return x + self.ffn(x)


class _DeployedSAL(nn.Module):
    """A SAL on the map ``[N, C, H, W]``; the SDA's ``scale`` folded into ``proj_last``."""

    def __init__(self, sal: Any) -> None:
        super().__init__()
        sda = sal.SDA
        self.proj_first = _conv1x1(*_fold(sal.conv1, sda.proj_first[0]))
        self.dconvs = nn.Sequential(*(_copy(m) for m in sda.DConvs))
        w, b = _linear(sda.proj_last[0])
        scale = sda.scale.detach().double().reshape(-1)
        self.proj_last = _conv1x1(w * scale[:, None], b * scale)
        self.ffn = _GatedFFN(sal.conv2, sal.ffn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, v = self.proj_first(torch.tanh(x)).chunk(2, dim=1)
        x = x + self.proj_last(v * self.dconvs(a))
        return x + self.ffn(x)


def mirror_indices(size: torch.Tensor | int, padded: torch.Tensor | int) -> torch.Tensor:
    """Source index of each of ``padded`` positions along an axis of ``size`` pixels.

    The release pads with ``F.pad(mode="reflect")`` (mirror without repeating the edge);
    :func:`~.arch.reflect_pad_to_multiple` repeats that for sides shorter than the pad, which
    continues the mirror periodically with period ``2 (size - 1)``, and replicates a side of
    one pixel. Both are ``min(j, period - j)`` for ``j = i mod period`` (period 1 when
    ``size`` is 1), so one ``Gather`` pads every size exactly as the release does.
    """
    period = torch.clamp(torch.as_tensor(size) * 2 - 2, min=1)
    j = torch.remainder(torch.arange(padded), period)  # type: ignore[arg-type]  # a traced size
    return torch.minimum(j, period - j)


class DeployedDITN(nn.Module):
    """:class:`~.arch.DITN` in its deployment form (see the module docstring).

    ``[N, 3, H, W]`` RGB in [0, 1] -> ``[N, 3, s*H, s*W]`` (not clamped), any H, W >= 1.
    Built from a loaded :class:`~.arch.DITN`; holds its own (folded) copies of the weights.
    """

    def __init__(self, net: DITN) -> None:
        super().__init__()
        self.patch, self.scale = net.patch_size, net.scale
        self.sft = _copy(net.sft)
        ufone: Any = net.UFONE
        self.itls = nn.ModuleList(nn.ModuleList(_DeployedITL(itl, self.patch) for itl in block.ITLs) for block in ufone)
        self.sals = nn.ModuleList(nn.ModuleList(_DeployedSAL(sal) for sal in block.SALs) for block in ufone)
        self.conv_after_body = _copy(net.conv_after_body)
        self.upsample = _copy(net.upsample[0])
        self.eval()

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch
        h, w = x.shape[-2], x.shape[-1]
        hp, wp = (h + p - 1) // p * p, (w + p - 1) // p * p
        x = x.index_select(2, mirror_indices(h, hp))
        return x.index_select(3, mirror_indices(w, wp))

    def _ufone(self, itls: Any, sals: Any, x: torch.Tensor) -> torch.Tensor:
        """Unfold once into patches (sizes from the map's traced shape), ITLs, fold, SALs."""
        n, c, h, w = x.shape
        p = self.patch
        patches = x.reshape(n, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(-1, c, p, p)
        for itl in itls:
            patches = itl(patches)
        x = patches.reshape(n, h // p, w // p, c, p, p).permute(0, 3, 1, 4, 2, 5).reshape(n, c, h, w)
        for sal in sals:
            x = sal(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        shallow = self.sft(self._pad(x))
        deep = shallow
        for itls, sals in zip(self.itls, self.sals):
            deep = self._ufone(itls, sals, deep)
        out = F.pixel_shuffle(self.upsample(self.conv_after_body(deep) + shallow), self.scale)
        return out[:, :, : h * self.scale, : w * self.scale]


class _Boundary(nn.Module):
    """float32 in and out around a network computing in ``dtype`` (the fp16 export)."""

    def __init__(self, net: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.net, self.dtype = net.to(dtype), dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.to(self.dtype)).float()


def deployed(state_dict: Mapping[str, Any], config: DITNConfig) -> DeployedDITN:
    """The deployment form of a DITN checkpoint (keys as in the release, already unwrapped)."""
    net = DITN(**config.to_dict())
    net.load_state_dict(dict(state_dict), strict=True)
    return DeployedDITN(net.eval())


def export_onnx(state_dict: Mapping[str, Any], config: DITNConfig, *, fp16: bool = False,
                static: tuple[int, int] | None = None, metadata: Mapping[str, str] | None = None) -> bytes:
    """The ONNX file (bytes) of a DITN checkpoint in its deployment form.

    ``static``: ``(width, height)`` fixed in the graph; ``None``: height and width dynamic.
    ``metadata`` goes into the file's ``metadata_props`` (model name, scale, weights sha256,
    licence). The batch is 1 (vs-mlrt's convention; hosts loop over frames).
    """
    if config.in_channels != 3:
        raise SuperResError(f"only RGB DITN checkpoints can be exported (this one takes {config.in_channels} channels)")
    net: nn.Module = deployed(state_dict, config)
    if fp16:
        net = _Boundary(net, torch.float16)
    width, height = static or (_TRACE_SIZE[1], _TRACE_SIZE[0])
    example = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    dynamic = None if static else {INPUT: {2: "height", 3: "width"}, OUTPUT: {2: "out_height", 3: "out_width"}}
    with tempfile.TemporaryDirectory(prefix="superres-export-") as folder, torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about every size it reads; each is recorded as a Shape op (the
        # graph is run at several sizes by the tests).
        warnings.simplefilter("ignore")
        path = os.path.join(folder, "ditn.onnx")
        # The TorchScript tracer (dynamo=False): seconds instead of torch.export's minutes,
        # and the sizes read from the traced tensor stay symbolic.
        torch.onnx.export(net, (example,), path, dynamo=False, opset_version=OPSET, input_names=[INPUT],
                          output_names=[OUTPUT], dynamic_axes=dynamic, do_constant_folding=True)
        with open(path, "rb") as f:
            data = f.read()
    return _with_metadata(data, metadata or {})


def _with_metadata(data: bytes, metadata: Mapping[str, str]) -> bytes:
    import onnx

    model = onnx.load_from_string(data)
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    model.producer_name = "vs-superres"
    model.doc_string = "DITN (Liu et al., ACM MM 2023) in its deployment form; input RGB [0, 1] NCHW, batch 1"
    return model.SerializeToString()

