"""API-format prompts for the tests: widgets default to what /object_info says."""

from __future__ import annotations


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


def image_prompt(server, image_file: str, model: str, *, out: str = "out", loader: dict | None = None, **upscale) -> dict:
    """LoadImage -> Loader -> Upscale Image -> probe (float32 .npy in output/)."""
    return {
        "1": node(server, "LoadImage", image=image_file),
        "2": node(server, "SuperResModelLoader", model=model, device="cpu", **(loader or {})),
        "3": node(server, "SuperResUpscaleImage", model=["2", 0], image=["1", 0], **upscale),
        "4": node(server, "SuperResProbeSaveImage", image=["3", 0], name=out),
    }


def video_prompt(server, video_file: str, model: str, *, out: str = "out", loader: dict | None = None,
                 cuts: str | None = None, **upscale) -> dict:
    """LoadVideo -> Loader -> Upscale Video -> probe, plus the input frames probed as ``<out>_in``."""
    prompt = {
        "1": node(server, "LoadVideo", file=video_file),
        "2": node(server, "SuperResModelLoader", model=model, device="cpu", **(loader or {})),
        "3": node(server, "SuperResUpscaleVideo", model=["2", 0], video=["1", 0], **upscale),
        "4": node(server, "SuperResProbeSaveVideo", video=["3", 0], name=out),
        "5": node(server, "SuperResProbeSaveVideo", video=["1", 0], name=out + "_in"),
    }
    if cuts is not None:
        prompt["6"] = node(server, "SuperResSceneCuts", frames=cuts)
        prompt["3"]["inputs"]["scene_cuts"] = ["6", 0]
    return prompt
