"""Network families of vs-superres; importing this package registers them with the engine.

Families that need optional dependencies (UltraVSR needs diffusers and peft) register their
descriptors here without importing those dependencies; the heavy imports happen when a model
is loaded.
"""

from . import debug, ditn, ultravsr  # noqa: F401
