"""``miniformer.sharing`` is ``miniformer_hf.sharing`` (the seed's import name)."""

import sys

import miniformer_hf.sharing

sys.modules[__name__] = miniformer_hf.sharing
