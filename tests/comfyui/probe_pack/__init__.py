"""Test-only ComfyUI nodes that write what reaches them, exactly, to ComfyUI's output folder.

ComfyUI's own save nodes quantise (PNG) or re-encode (h264), so they cannot show that our
output equals the engine's bit for bit; these write float32 arrays and the exact frame rate.
They are real ComfyUI nodes run by the real server, loaded only by the tests.
"""

import json
import os

import sys

import folder_paths
import numpy as np


def _drop_torchvision_standin():
    """ComfyUI has started: its start-up imports of torchvision are done. Take the stand-in
    (tools/comfy_env.sh) off the path, so transformers/diffusers find no torchvision."""
    sys.path[:] = [p for p in sys.path if not p.rstrip(os.sep).endswith(os.sep + "standins")]
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    try:
        from transformers.utils import import_utils
        import_utils.is_torchvision_available.cache_clear()
    except (ImportError, AttributeError):
        pass


_drop_torchvision_standin()


def _path(name):
    return os.path.join(folder_paths.get_output_directory(), name)


class SuperResProbeSaveImage:
    CATEGORY = "superres/testing"
    FUNCTION = "run"
    RETURN_TYPES = ()
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "name": ("STRING", {"default": "probe"})}}

    def run(self, image, name):
        np.save(_path(name + ".npy"), image.numpy())
        return {"ui": {"text": [name]}}


class SuperResProbeSaveVideo:
    CATEGORY = "superres/testing"
    FUNCTION = "run"
    RETURN_TYPES = ()
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"video": ("VIDEO",), "name": ("STRING", {"default": "probe"})}}

    def run(self, video, name):
        parts = video.get_components()
        np.save(_path(name + ".npy"), parts.images.numpy())
        from comfy_api.input_impl import VideoFromFile

        source = video.get_stream_source() if isinstance(video, VideoFromFile) else None
        info = {"fps": [parts.frame_rate.numerator, parts.frame_rate.denominator], "frames": int(parts.images.shape[0]),
                "source": source if isinstance(source, str) else None}
        if parts.audio is not None:
            np.save(_path(name + ".audio.npy"), parts.audio["waveform"].numpy())
            info["sample_rate"] = int(parts.audio["sample_rate"])
        with open(_path(name + ".json"), "w") as f:
            json.dump(info, f)
        return {"ui": {"text": [name]}}


class SuperResProbeGreyBatch:
    """An IMAGE batch of ``count`` grey frames that costs one frame of memory (one frame
    expanded, as a node that repeats a frame may give): sizes no test machine could hold
    otherwise, and the empty batch (count 0)."""

    CATEGORY = "superres/testing"
    FUNCTION = "run"
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def INPUT_TYPES(cls):
        big = {"default": 1, "min": 0, "max": 2**31 - 1}
        return {"required": {"count": ("INT", big), "width": ("INT", dict(big, default=16, min=1)),
                             "height": ("INT", dict(big, default=16, min=1))}}

    def run(self, count, width, height):
        import torch

        return (torch.full((1, height, width, 3), 0.5).expand(count, height, width, 3),)


NODE_CLASS_MAPPINGS = {"SuperResProbeSaveImage": SuperResProbeSaveImage, "SuperResProbeSaveVideo": SuperResProbeSaveVideo,
                       "SuperResProbeGreyBatch": SuperResProbeGreyBatch}
