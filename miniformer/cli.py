"""``miniformer.cli`` is ``miniformer_hf.cli`` (the seed's import name)."""

import sys

import miniformer_hf.cli

sys.modules[__name__] = miniformer_hf.cli
