"""``superres export MODEL OUT.onnx [--fp16] [--static WxH]``: a model's network as an ONNX file.

The file is what vs-mlrt, ONNX Runtime, OpenVINO and TensorRT take (``docs/deployment.md``):
one input ``input`` float32 ``[1, 3, H, W]`` RGB in [0, 1], one output; any size unless
``--static`` fixes one. MODEL is a registered name or a checkpoint file of an exportable
family (DITN). The graph is made and checked by the runtime (:mod:`vs_superres.runtime.exported`);
this command only resolves the model, checks that OUT can be written before any work, and
writes the file atomically (never a half-written OUT).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Callable

from vs_superres.contracts.errors import InvalidOption, SuperResError
from vs_superres.media.atomic import check_writable
from vs_superres.runtime.exported import exportable_models


def add_parser(sub, subcommand: Callable[..., argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """``superres export``'s parser (``subcommand`` is the app's: it adds ``--debug``)."""
    models = ", ".join(exportable_models())
    p = subcommand(sub, "export", help="write a model's network as an ONNX file (vs-mlrt, ONNX Runtime, OpenVINO, TensorRT)",
                   description="Export MODEL's network to OUTPUT as ONNX: input 'input' float32 [1, 3, H, W] RGB in [0, 1], "
                               "one output [1, 3, s*H, s*W]; any H and W unless --static fixes them. "
                               f"Exportable: {models}, or a checkpoint file of their family. See docs/deployment.md.")
    p.add_argument("model", help=f"a registered model ({models}) or a checkpoint file")
    p.add_argument("output", help="the .onnx file to write")
    p.add_argument("--fp16", action="store_true", help="compute in half precision inside the graph (input and output stay float32)")
    p.add_argument("--static", metavar="WxH", default=None,
                   help="fix the input size in the graph (e.g. 640x360; TensorRT engines, fixed tiles); default: any size")
    return p


def parse_static(text: str | None) -> tuple[int, int] | None:
    """``WxH`` -> ``(W, H)``; None stays None."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or min(int(m.group(1)), int(m.group(2))) < 1:
        raise InvalidOption(f"--static must be WIDTHxHEIGHT in pixels, e.g. 640x360, got {text!r}", option="static")
    return int(m.group(1)), int(m.group(2))


def _check_output(dst: Path, overwrite: bool | None) -> None:
    """OUT can be written (and may be replaced); raises before any work otherwise."""
    if dst.is_dir():
        raise SuperResError(f"output {str(dst)!r} is a folder; give a file name such as {str(dst / 'model.onnx')!r}")
    exists = dst.exists() or dst.is_symlink()
    if exists and overwrite is False:
        raise SuperResError(f"output {str(dst)!r} already exists and -n/--no-overwrite was given; remove it, "
                            "choose another name, or pass -y/--overwrite to replace it")
    check_writable(dst)  # a missing or unwritable folder is said here, before the export
    if exists and overwrite is None:
        print(f"superres: replacing existing {dst} (-n refuses, -y replaces without this notice)", file=sys.stderr)


def cmd_export(args) -> int:
    # Imported here: every other command (and --help) starts without torch.
    from vs_superres.runtime import weights as weights_mod
    from vs_superres.runtime.exported import (Weights, export_graph, exporting_family, read_weights, require_onnx,
                                              write_graph)
    from vs_superres.runtime.loading import resolve_model, resolve_weights

    static = parse_static(args.static)
    resolved = resolve_model(args.model)
    desc = resolved.descriptor
    exporting_family(desc)  # "not exportable: ..." before anything is read or written
    require_onnx()
    dst = Path(args.output)
    _check_output(dst, getattr(args, "overwrite", None))
    if resolved.state_dict is not None:  # a checkpoint file: its own sha256 goes into the metadata
        weights = Weights(resolved.state_dict, weights_mod.sha256_of(args.model), "file")
    else:
        weights = read_weights(desc, resolve_weights(desc, [], {}), None)
    data = export_graph(desc, weights, precision="fp16" if args.fp16 else "fp32", static=static)
    write_graph(data, dst)
    shape = "any size" if static is None else f"{static[0]}x{static[1]}"
    print(f"superres: wrote {dst} ({desc.name} x{desc.scale}, {'fp16' if args.fp16 else 'fp32'}, {shape}, "
          f"{len(data) / 1e6:.1f} MB)", file=sys.stderr)
    return 0
