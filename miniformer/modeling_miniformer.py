"""``miniformer.modeling_miniformer`` is ``miniformer_hf.modeling_miniformer`` (the seed's import name)."""

import sys

import miniformer_hf.modeling_miniformer

sys.modules[__name__] = miniformer_hf.modeling_miniformer
