"""``miniformer.training`` is ``miniformer_hf.training`` (the seed's import name)."""

import sys

import miniformer_hf.training

sys.modules[__name__] = miniformer_hf.training
