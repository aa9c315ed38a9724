"""Mirror averaging at test time (flip TTA).

The training recipe mirrors each sample with probability 0.5 (``augmentation.flip_batch``:
image mirrored, u ↦ 1 − u, landmarks mirrored and re-indexed), so a trained model has
seen both orientations of every face. Its output on one orientation of a test sample
still carries a part that depends on which one it sees; the mean of its logits over the
sample and its mirror removes that part. No parameter, no label: it only costs a second
forward pass.
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp

from fedpsyau_jax.training.augmentation import flip_batch


def mirror(batch: dict) -> dict:
    """Every sample of ``batch`` mirrored (``augmentation.flip_batch`` with all True)."""
    return flip_batch(batch, jnp.ones(jnp.shape(batch["landmarks"])[:1], bool))


def flip_averaged(apply: Callable) -> Callable:
    """``apply(variables, batch) -> tuple of logits (or None)`` made into the same
    function whose every output is the mean over ``batch`` and ``mirror(batch)``.

    Logits are averaged (not probabilities): a softmax or sigmoid of the mean is the
    normalised geometric mean of the two orientations' class probabilities. Jit the
    result as a whole."""

    def averaged(variables, batch):
        a = apply(variables, batch)
        b = apply(variables, mirror(batch))
        return tuple(None if x is None else 0.5 * (x + y) for x, y in zip(a, b))

    return averaged
