"""PatchScaler (Liu et al.): patch-adaptive group sampling with a Patch-DiT and texture prompts.

See ``docs/patchscaler.md``: the paper's equations, where this implementation chose for it,
and what a user must supply (autoencoder weights) or train (everything else).
"""
