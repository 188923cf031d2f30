"""``miniformer.configuration_miniformer`` is ``miniformer_hf.configuration_miniformer`` (the seed's import name)."""

import sys

import miniformer_hf.configuration_miniformer

sys.modules[__name__] = miniformer_hf.configuration_miniformer
