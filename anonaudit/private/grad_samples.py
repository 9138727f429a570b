"""A faster way for Opacus 1.6 to store per-sample gradients of a full batch.

Opacus' ``create_or_accumulate_grad_sample`` allocates a zero tensor of the batch's length for
every layer and copies the layer's per-sample gradients into it, even when they already have that
length. On the ANN VAE at batch 250 the zero-fill and the copy took about a quarter of a DP-SGD
step (profiled with ``torch.profiler``). When the gradients are a fresh tensor of the full length
they can be kept as they are; every other case (layers reused across time steps, which accumulate,
a view of another tensor) goes to Opacus' own function. Only Opacus 1.6 is patched: the fast path
relies on its ``_current_grad_sample`` protocol. The per-sample-gradient test compares the result
with per-example autograd for both VAEs.
"""

from __future__ import annotations

import opacus
import torch
from opacus.grad_sample import grad_sample_module

_original = grad_sample_module.create_or_accumulate_grad_sample


def _create_or_accumulate(*, param: torch.Tensor, grad_sample: torch.Tensor, max_batch_len: int) -> None:
    if (param.requires_grad and not hasattr(param, "_current_grad_sample")
            and grad_sample.shape[0] == max_batch_len and not grad_sample._is_view()):
        param._current_grad_sample = grad_sample  # type: ignore[attr-defined]
    else:
        _original(param=param, grad_sample=grad_sample, max_batch_len=max_batch_len)


def install(enabled: bool = True) -> bool:
    """Use the fast path in Opacus' hooks (idempotent; ``enabled=False`` restores Opacus' own, for
    the benchmark's comparison). False where the Opacus version is not 1.6."""
    if not opacus.__version__.startswith("1.6."):
        return False
    grad_sample_module.create_or_accumulate_grad_sample = _create_or_accumulate if enabled else _original
    return enabled
