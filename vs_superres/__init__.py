"""vs-superres: super-resolution engine for VapourSynth, ComfyUI and FFmpeg pipelines.

``from vs_superres import Upscaler`` is the Python API (imported on first use, so that
``import vs_superres`` stays free of torch).
"""

from vs_superres.contracts.errors import Cancelled, InternalError, InvalidOption, SuperResError, UnsupportedFormat, WeightsError

__version__ = "0.1.0"

__all__ = ["Cancelled", "InternalError", "InvalidOption", "SuperResError", "UnsupportedFormat", "Upscaler",
           "WeightsError", "__version__"]


def __getattr__(name: str):
    if name == "Upscaler":
        from vs_superres.runtime.upscaler import Upscaler

        return Upscaler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
