"""Contracts: the types every layer agrees on (errors, frames, configs, options, descriptors,
runner protocols, progress). They import nothing of the rest of vs-superres, and nothing heavy:
``frames`` is the only module that needs torch."""
