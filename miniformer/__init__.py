"""The seed's import name: ``miniformer`` is ``miniformer_hf`` under the name the seed README uses.

The package is ``miniformer_hf``; this alias keeps the seed's lines working as written::

    from miniformer import Transformer, TransformerTrainer
    from miniformer.visualization import plot_attention

Each submodule here (``miniformer.visualization``, ``miniformer.training``, ...) is the very module
object of ``miniformer_hf``, so classes are not defined twice.
"""

import miniformer_hf
from miniformer_hf import *  # noqa: F401,F403  (the names in miniformer_hf.__all__)
from miniformer_hf import __all__, __version__  # noqa: F401


def __getattr__(name):
    # Names that miniformer_hf resolves lazily (TransformerTrainer) resolve the same way here.
    return getattr(miniformer_hf, name)
