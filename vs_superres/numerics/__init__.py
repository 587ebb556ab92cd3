"""Shared numerics: tile blending, out-of-memory retry, resampling, colour fix, safe checkpoint
reading. Depends on the contracts only; used by the model families and the runtime."""
