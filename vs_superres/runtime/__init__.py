"""Runtime: registry and composition root, weights, devices, loading, spatial tiling policy,
the window scheduler and the :class:`~.upscaler.Upscaler` facade. Depends on the contracts,
the shared numerics and (only through the composition root) the model families."""
