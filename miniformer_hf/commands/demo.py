"""``miniformer demo``: a live attention page (Gradio) for a run folder or Hub repo (`miniformer_hf.demo`)."""

from __future__ import annotations

from ..errors import MiniformerError


def add_arguments(parser):
    from ..demo import add_demo_arguments  # the standard library only; Gradio and torch load when the page starts

    add_demo_arguments(parser)


def run(args) -> int:
    from ..demo import run_demo

    try:
        return run_demo(args)
    except ImportError as error:  # the demo extra; its message says how to install it
        raise MiniformerError(str(error)) from error
