"""``miniformer.tokenization`` is ``miniformer_hf.tokenization`` (the seed's import name)."""

import sys

import miniformer_hf.tokenization

sys.modules[__name__] = miniformer_hf.tokenization
