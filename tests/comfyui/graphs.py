"""API-format prompts for the tests: widgets default to what /object_info says; and the
frontend's conversion of a saved (UI-format) workflow into a prompt."""

from __future__ import annotations

from vs_superres.comfy_nodes.loaders import loader_id
from vs_superres.runtime.registry import default_registry


def loader_for(model: str) -> str:
    """The loader node of a model: its family's for a registered name, DITN's for a file."""
    registry = default_registry()
    family = registry.get(model).family if model in registry else "ditn"
    return loader_id(registry.family(family))


def node(server, class_type: str, **inputs) -> dict:
    """A prompt node whose widgets not given take the server's defaults."""
    info = server.object_info(class_type)["input"]
    values = {}
    for section in ("required", "optional"):
        for name, spec in info.get(section, {}).items():
            opts = spec[1] if len(spec) > 1 else {}
            if spec[0] == "COMBO":  # the V3 spelling of a combo
                values[name] = opts.get("default", (opts.get("options") or [None])[0])
            elif isinstance(spec[0], list):
                values[name] = opts.get("default", spec[0][0] if spec[0] else None)
            elif spec[0] in ("INT", "FLOAT", "BOOLEAN", "STRING") and "default" in opts:
                values[name] = opts["default"]
    values.update(inputs)
    return {"class_type": class_type, "inputs": values}


def image_prompt(server, image_file: str, model: str, *, out: str = "out", loader: dict | None = None,
                 loader_type: str | None = None, **upscale) -> dict:
    """LoadImage -> Loader -> Upscale Image -> probe (float32 .npy in output/)."""
    return {
        "1": node(server, "LoadImage", image=image_file),
        "2": node(server, loader_type or loader_for(model), model=model, device="cpu", **(loader or {})),
        "3": node(server, "SuperResUpscaleImage", model=["2", 0], image=["1", 0], **upscale),
        "4": node(server, "SuperResProbeSaveImage", image=["3", 0], name=out),
    }


def video_prompt(server, video_file: str, model: str, *, out: str = "out", loader: dict | None = None,
                 cuts: str | None = None, **upscale) -> dict:
    """LoadVideo -> Loader -> Upscale Video -> probe, plus the input frames probed as ``<out>_in``."""
    prompt = {
        "1": node(server, "LoadVideo", file=video_file),
        "2": node(server, loader_for(model), model=model, device="cpu", **(loader or {})),
        "3": node(server, "SuperResUpscaleVideo", model=["2", 0], video=["1", 0], **upscale),
        "4": node(server, "SuperResProbeSaveVideo", video=["3", 0], name=out),
        "5": node(server, "SuperResProbeSaveVideo", video=["1", 0], name=out + "_in"),
    }
    if cuts is not None:
        prompt["6"] = node(server, "SuperResSceneCuts", frames=cuts)
        prompt["3"]["inputs"]["scene_cuts"] = ["6", 0]
    return prompt


def _widget_inputs(info: dict) -> list[tuple[str, object, dict]]:
    """``(name, type, options)`` of a node's widgets in the order the frontend makes them."""
    out = []
    for section in ("required", "optional"):
        for name, spec in info["input"].get(section, {}).items():
            kind, opts = spec[0], (spec[1] if len(spec) > 1 else {})
            if isinstance(kind, list) or kind in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"):
                out.append((name, kind, opts))
    return out


def prompt_from_workflow(server, workflow: dict) -> dict:
    """The API prompt the frontend queues for a saved UI-format workflow: each node's
    ``widgets_values`` read back by position against the server's widgets (plus the values
    the frontend stores for its own extra widgets: an upload button, "control after
    generate"), its links turned into ``[node, slot]`` inputs."""
    links = {link[0]: link for link in workflow["links"]}
    prompt = {}
    for n in workflow["nodes"]:
        info = server.object_info(n["type"])
        values = list(n.get("widgets_values") or [])
        inputs: dict = {}
        for name, kind, opts in _widget_inputs(info):
            if not values:
                break
            inputs[name] = values.pop(0)
            if opts.get("image_upload") or opts.get("video_upload") or opts.get("upload"):
                values.pop(0)
            control = opts.get("control_after_generate")
            if kind == "INT" and (control if control is not None else name in ("seed", "noise_seed")):
                values.pop(0)
        assert not values, f"{n['type']}: {len(values)} widget values left over"
        for entry in n.get("inputs", []):
            if entry.get("link") is not None:
                _, src, slot, *_ = links[entry["link"]]
                inputs[entry["name"]] = [str(src), slot]
        prompt[str(n["id"])] = {"class_type": n["type"], "inputs": inputs}
    return prompt
