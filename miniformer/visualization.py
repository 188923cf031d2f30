"""``miniformer.visualization`` is ``miniformer_hf.visualization`` (the seed's import name)."""

import sys

import miniformer_hf.visualization

sys.modules[__name__] = miniformer_hf.visualization
