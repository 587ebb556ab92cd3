"""Writes the example ComfyUI workflows (comfy_nodes/workflows/*.json) from the nodes' own
definitions.

The files are in ComfyUI's UI format, where a node's widget values are a list read back by
position (``widgets_values``). Our nodes' widgets are derived from every family's declared
options, so a family that adds, removes or reorders an option shifts every later value and the
frontend refuses the file. The values of our nodes are therefore never written by hand: they
are each widget's default (from :mod:`vs_superres.comfy_nodes.nodes` and ``.inputs``) plus the
few settings an example chooses (``EXAMPLE_LOADER``); the stock ComfyUI and VideoHelperSuite
nodes around them are described here.

    python tools/comfy_workflows.py          # rewrite the files
    python tools/comfy_workflows.py --check  # exit 1 if a file is not what it would write

Only the built-in families are used (not ``$SUPERRES_FAMILIES`` nor installed plugins): the
files ship with the package, whose loader shows exactly those.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / "comfy_nodes" / "workflows"
#: The family whose loader every example uses, and that loader's settings (every other widget
#: keeps its default).
EXAMPLE_FAMILY = "ditn"
EXAMPLE_LOADER = {"model": "ditn-real-x4", "device": "auto", "dtype": "fp32"}
#: The frontend's "control after generate" value, where a widget has one: never change it.
FIXED = "fixed"
# Rough heights the frontend gives a node's parts, so a node opens showing all its widgets.
_TITLE_H, _SLOT_H, _WIDGET_H, _WIDTH = 46, 22, 24, 320


def builtin_registry():
    from vs_superres.runtime.families import BUILTIN, register_module
    from vs_superres.runtime.registry import Registry

    registry = Registry()
    for module in BUILTIN:
        register_module(registry, module)
    return registry


def example_loader(registry) -> str:
    """The node type of the examples' loader (SuperRes Load DITN)."""
    from vs_superres.comfy_nodes.loaders import loader_id

    return loader_id(registry.family(EXAMPLE_FAMILY))


def our_ports(node_type: str, registry) -> tuple:
    """The inputs of one of our nodes, as ComfyUI gets them (a loader's model and device
    choices are this example's, so no ComfyUI is needed)."""
    from vs_superres.comfy_nodes.loaders import LEGACY_LOADER, family_loader_ports, legacy_loader_ports, loader_id
    from vs_superres.comfy_nodes.nodes import NODES

    choices = ((EXAMPLE_LOADER["model"],), ("auto", "cpu"))
    if node_type == LEGACY_LOADER:
        return legacy_loader_ports(*choices, registry)
    family = next((f for f in registry.families() if loader_id(f) == node_type), None)
    if family is not None:
        return family_loader_ports(family, *choices)
    return next(spec for spec in NODES if spec.node_id == node_type).inputs()


def widget_values(ports: Sequence, chosen: Mapping[str, Any]) -> list:
    """Each widget's value in the frontend's order: the chosen one or its default, and the
    "control after generate" value after an INT the frontend gives one."""
    from vs_superres.comfy_nodes.spec import FRONTEND_SEED_NAMES

    widgets = [p for p in ports if p.is_widget]
    unknown = set(chosen) - {p.name for p in widgets}
    if unknown:
        raise SystemExit(f"no widget {sorted(unknown)} on this node; its widgets are {[p.name for p in widgets]}")
    values: list = []
    for p in widgets:
        value = chosen.get(p.name, p.default)
        if p.kind == "COMBO" and value not in p.choices:
            raise SystemExit(f"widget {p.name!r}: {value!r} is not one of {list(p.choices)}")
        values.append(value)
        control = p.control_after_generate
        if p.kind == "INT" and (control if control is not None else p.name in FRONTEND_SEED_NAMES):
            values.append(FIXED)
    return values


class Graph:
    """A UI-format workflow: nodes added in execution order, then linked by input name."""

    def __init__(self, title: str):
        self.title = title
        self.nodes: list[dict] = []
        self.links: list[list] = []

    def add(self, node_type: str, pos: tuple[int, int], widgets: list | dict,
            inputs: Sequence[tuple[str, str]] = (), outputs: Sequence[tuple[str, str]] = (),
            widget_inputs: Sequence[str] = (), rows: int | None = None) -> int:
        """``widget_inputs``: inputs that are widgets turned into sockets (linked from elsewhere)."""
        node_id = len(self.nodes) + 1
        count = rows if rows is not None else len(widgets)
        height = _TITLE_H + _SLOT_H * max(len(inputs), len(outputs)) + _WIDGET_H * count
        self.nodes.append({
            "id": node_id, "type": node_type, "pos": list(pos), "size": [_WIDTH, height], "flags": {},
            "order": len(self.nodes), "mode": 0,
            "inputs": [dict({"name": n, "type": t, "link": None}, **({"widget": {"name": n}} if n in widget_inputs else {}))
                       for n, t in inputs],
            "outputs": [{"name": n, "type": t, "links": [], "slot_index": i} for i, (n, t) in enumerate(outputs)],
            "properties": {"Node name for S&R": node_type},
            "widgets_values": widgets,
        })
        return node_id

    def add_ours(self, node_type: str, pos: tuple[int, int], registry, chosen: Mapping[str, Any] | None = None) -> int:
        from vs_superres.comfy_nodes.loaders import loaders
        from vs_superres.comfy_nodes.nodes import NODES

        spec = next(s for s in (*loaders(registry), *NODES) if s.node_id == node_type)
        ports = our_ports(node_type, registry)
        sockets = [(p.name, p.kind) for p in ports if not p.is_widget]
        values = widget_values(ports, chosen or {})
        return self.add(node_type, pos, values, inputs=sockets, outputs=[(n, t) for t, n in spec.outputs])

    def link(self, src: int, slot: int, dst: int, input_name: str) -> None:
        source, target = self.nodes[src - 1], self.nodes[dst - 1]
        index = next(i for i, entry in enumerate(target["inputs"]) if entry["name"] == input_name)
        link_id = len(self.links) + 1
        kind = source["outputs"][slot]["type"]
        if target["inputs"][index]["type"] != kind:
            raise SystemExit(f"{source['type']} output {slot} ({kind}) cannot feed {target['type']}.{input_name}")
        source["outputs"][slot]["links"].append(link_id)
        target["inputs"][index]["link"] = link_id
        self.links.append([link_id, src, slot, dst, index, kind])

    def as_json(self) -> dict:
        return {
            "last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": self.nodes,
            "links": self.links, "groups": [], "config": {}, "extra": {"info": {"title": self.title}}, "version": 0.4,
        }


def upscale_image(registry) -> dict:
    from vs_superres.comfy_nodes.nodes import UPSCALE_IMAGE

    g = Graph("vs-superres: LoadImage -> SuperRes Upscale Image -> SaveImage")
    image = g.add("LoadImage", (40, 60), ["example.png", "image"], outputs=[("IMAGE", "IMAGE"), ("MASK", "MASK")], rows=6)
    loader = g.add_ours(example_loader(registry), (40, 420), registry, EXAMPLE_LOADER)
    up = g.add_ours(UPSCALE_IMAGE, (420, 60), registry)
    save = g.add("SaveImage", (800, 60), ["superres/image"], inputs=[("images", "IMAGE")], rows=4)
    g.link(loader, 0, up, "model")
    g.link(image, 0, up, "image")
    g.link(up, 0, save, "images")
    return g.as_json()


def upscale_video(registry) -> dict:
    from vs_superres.comfy_nodes.nodes import UPSCALE_VIDEO

    g = Graph("vs-superres: LoadVideo -> SuperRes Upscale Video -> SaveVideo")
    video = g.add("LoadVideo", (40, 60), ["example.mp4", "image"], outputs=[("VIDEO", "VIDEO")], rows=6)
    loader = g.add_ours(example_loader(registry), (40, 420), registry, EXAMPLE_LOADER)
    up = g.add_ours(UPSCALE_VIDEO, (420, 60), registry)
    save = g.add("SaveVideo", (800, 60), ["superres/video", "auto", "auto"], inputs=[("video", "VIDEO")])
    g.link(loader, 0, up, "model")
    g.link(video, 0, up, "video")
    g.link(up, 0, save, "video")
    return g.as_json()


def vhs_upscale_video(registry) -> dict:
    """VideoHelperSuite: its nodes keep widget values by name (a dict), ours by position."""
    from vs_superres.comfy_nodes.nodes import UPSCALE_IMAGE

    g = Graph("vs-superres: VHS LoadVideo -> SuperRes Upscale Image -> VHS VideoCombine (fps and audio wired)")
    video = g.add("VHS_LoadVideo", (40, 60), {
        "video": "example.mp4", "force_rate": 0, "custom_width": 0, "custom_height": 0, "frame_load_cap": 0,
        "skip_first_frames": 0, "select_every_nth": 1, "format": "None"},
        outputs=[("IMAGE", "IMAGE"), ("frame_count", "INT"), ("audio", "AUDIO"), ("video_info", "VHS_VIDEOINFO")])
    loader = g.add_ours(example_loader(registry), (40, 480), registry, EXAMPLE_LOADER)
    up = g.add_ours(UPSCALE_IMAGE, (420, 60), registry)
    info = g.add("VHS_VideoInfoLoaded", (420, 420), [], inputs=[("video_info", "VHS_VIDEOINFO")],
                 outputs=[(f"{n}\U0001f7e6", t) for n, t in (("fps", "FLOAT"), ("frame_count", "INT"),
                                                             ("duration", "FLOAT"), ("width", "INT"), ("height", "INT"))])
    combine = g.add("VHS_VideoCombine", (800, 60), {
        "frame_rate": 24, "loop_count": 0, "filename_prefix": "superres/vhs", "format": "video/h264-mp4",
        "pix_fmt": "yuv420p", "crf": 19, "save_metadata": True, "pingpong": False, "save_output": True},
        inputs=[("images", "IMAGE"), ("audio", "AUDIO"), ("frame_rate", "FLOAT")], widget_inputs=("frame_rate",))
    g.link(loader, 0, up, "model")
    g.link(video, 0, up, "image")
    g.link(video, 3, info, "video_info")
    g.link(up, 0, combine, "images")
    g.link(video, 2, combine, "audio")
    g.link(info, 0, combine, "frame_rate")  # the source's exact rate, not the widget's 24
    return g.as_json()


EXAMPLES = {"upscale_image.json": upscale_image, "upscale_video.json": upscale_video,
            "vhs_upscale_video.json": vhs_upscale_video}


def render(workflow: dict) -> str:
    return json.dumps(workflow, indent=1) + "\n"


def build() -> dict[str, str]:
    """File name -> text of every example workflow."""
    registry = builtin_registry()
    return {name: render(make(registry)) for name, make in EXAMPLES.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report files that differ (exit 1), write nothing")
    parser.add_argument("--out", type=Path, default=WORKFLOWS, help=f"folder to write (default {WORKFLOWS})")
    args = parser.parse_args(argv)
    stale = []
    for name, text in build().items():
        path = args.out / name
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        stale.append(name)
        if not args.check:
            args.out.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if args.check and stale:
        print(f"out of date: {', '.join(stale)}; run python tools/comfy_workflows.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
