"""Network families of vs-superres, one folder each (see ``docs/design.md``).

Families depend on the contracts and shared numerics only. Which families exist is decided by
the runtime's composition root (``vs_superres.runtime.families``), not by importing this
package.
"""
