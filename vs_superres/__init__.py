"""vs-superres: super-resolution engine for VapourSynth, ComfyUI and FFmpeg pipelines."""

from .errors import Cancelled, SuperResError, WeightsError

__version__ = "0.1.0"

__all__ = ["Cancelled", "SuperResError", "WeightsError", "__version__"]
