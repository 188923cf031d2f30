"""Several processes: torchrun / ``accelerate launch``, and FSDP2 on the CPU.

* `distributed_state`: accelerate's process state when several processes were launched, else None.
* `launched_on_cpu_only`: several processes and no accelerator (the trainer then asks for gloo).
* `enable_fsdp_on_cpu`: turn on the FSDP plugin the launcher asked for, which accelerate ignores on CPUs.
* `unsharded_class` / `plain_model`: the model's own class under FSDP's ``FSDP<Name>`` subclass, and a
  plain (unsharded) copy built from a full state dict: the one rebuild that saving and the end of a
  run both use.
"""

from __future__ import annotations

import copy
import os

import torch

from .options import fsdp_requested

__all__ = ["distributed_state", "enable_fsdp_on_cpu", "gathered_model", "launched_on_cpu_only", "plain_model", "unsharded_class"]


def launched_on_cpu_only() -> bool:
    """Several processes were launched (WORLD_SIZE > 1) and there is no GPU or other accelerator."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.accelerator.is_available()


def distributed_state():
    """accelerate's process state when several processes were launched (torchrun, accelerate launch)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import PartialState

    # The same choice as TransformerTrainer's: gloo on the CPU when there is no accelerator.
    return PartialState(cpu=not torch.accelerator.is_available())


def _fsdp_requested_on_cpu() -> bool:
    """``accelerate launch`` with an FSDP configuration (it sets ACCELERATE_USE_FSDP) on a machine without GPUs."""
    return fsdp_requested() and launched_on_cpu_only()


def enable_fsdp_on_cpu(trainer) -> None:
    """Turn on the FSDP plugin that ``accelerate launch --config_file <fsdp config>`` asked for, on the CPU.

    accelerate 1.15 only switches to FSDP for accelerator backends and quietly falls back to plain
    data parallelism (every process holding the whole model) for CPU processes; FSDP2 itself
    (``torch.distributed.fsdp.fully_shard``) runs on the CPU with gloo since torch 2.6. The plugin is
    read from the same environment variables the launcher sets for GPUs (FSDP_VERSION,
    FSDP_AUTO_WRAP_POLICY, FSDP_TRANSFORMER_CLS_TO_WRAP, FSDP_STATE_DICT_TYPE ...).
    """
    state = trainer.accelerator.state
    if not _fsdp_requested_on_cpu() or getattr(state, "fsdp_plugin", None) is not None:
        return
    from accelerate import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    # Both shared states: every AcceleratorState() built later copies distributed_type from PartialState.
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    state.distributed_type = DistributedType.FSDP
    state.fsdp_plugin = FullyShardedDataParallelPlugin()
    trainer.is_fsdp_enabled = True


def unsharded_class(model) -> type | None:
    """The model's own class when FSDP2 has swapped in its ``FSDP<Name>`` subclass, else None."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # torch without FSDP2
        return None
    if not isinstance(model, FSDPModule):
        return None
    return next(base for base in type(model).__mro__[1:] if not issubclass(base, FSDPModule))


def plain_model(sharded, state_dict: dict):
    """A plain model of ``sharded``'s own class holding the full ``state_dict`` gathered from it.

    Saved as is, it writes modeling_miniformer.py next to the weights (the FSDP class would copy torch's
    sources instead); the generation config travels with it.
    """
    plain = unsharded_class(sharded)(sharded.config)
    plain.load_state_dict(state_dict, strict=False)  # lm_head.weight may be absent: it follows the tied embedding
    plain.tie_weights()
    plain.generation_config = copy.deepcopy(sharded.generation_config)
    return plain


def gathered_model(hf_trainer):
    """The full model of an FSDP run as a plain model (eval mode) on the main process; None elsewhere.

    Every process must call this: the weights are gathered from all of them."""
    sharded = hf_trainer.model
    state_dict = hf_trainer.accelerator.get_state_dict(sharded)  # full on the main process, empty elsewhere
    if not hf_trainer.args.should_save:
        return None
    return plain_model(sharded, state_dict).eval()
