"""BatchNorm that ignores padding examples: the one normalisation every network of the
package uses, so that a padded batch of a vmapped fold or client trains exactly like the
unpadded one."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


def batch_norm(train: bool, name: str | None = None) -> nn.BatchNorm:
    # PyTorch's BatchNorm momentum 0.1 is Flax's 0.9 (weight of the running average).
    return nn.BatchNorm(use_running_average=not train, name=name, momentum=0.9, epsilon=1e-5)


def bn_mask(mask, x):
    """Example mask (B,) -> broadcastable to x (B, ...) for BatchNorm, or None.

    A batch with no real example (the padding steps of a shorter fold or client) would
    give BatchNorm an empty mean, NaN; such a step is a no-op anyway (the train step
    keeps the old state), so it takes statistics over the whole (padding) batch and
    stays finite instead."""
    if mask is None:
        return None
    m = mask > 0
    m = m | ~jnp.any(m)
    return m.reshape(mask.shape[:1] + (1,) * (x.ndim - 1))


def masked_batch_norm(x, train: bool, mask, name: str | None = None):
    """BatchNorm of x (B, ...) over the examples whose mask is 1 (all when mask is None);
    running averages in eval mode."""
    return batch_norm(train, name)(x, mask=bn_mask(mask, x) if train else None)
