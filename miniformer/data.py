"""``miniformer.data`` is ``miniformer_hf.data`` (the seed's import name)."""

import sys

import miniformer_hf.data

sys.modules[__name__] = miniformer_hf.data
