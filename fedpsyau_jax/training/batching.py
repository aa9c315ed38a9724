"""Epoch plans: which sample indices form each padded batch, and the device gather.

A plan is a pair ``idx`` (S, B) int32 and ``mask`` (S, B) float32: S steps of B
indices into one dataset; padded slots have mask 0 (and index 0, harmless). Plans of
several folds or clients are padded to a common S (``stack_plans``) so that one
compiled ``lax.scan`` + ``vmap`` trains them together; an all-zero step is a no-op in
``train_state.make_train_step``. The dataset itself stays on device once and batches
are gathered inside the compiled step (``gather_batch``), so vmapped folds share it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

BATCH_KEYS = ("flow128", "flow28", "landmarks", "label", "au", "au_mask")


def epoch_plan(
    rng: np.random.Generator,
    indices: np.ndarray,
    batch_size: int,
    labels: np.ndarray | None = None,
    oversample: bool = False,
    num_steps: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle ``indices`` into padded batches.

    oversample: class-balanced oversampling (reference practice) — every class is
      resampled with replacement up to the size of the largest class; needs ``labels``
      (labels of the whole dataset, indexed by ``indices``).
    num_steps: pad (with empty steps) or fail to exactly this many steps.
    """
    indices = np.asarray(indices, np.int64)
    if oversample:
        if labels is None:
            raise ValueError("oversample=True needs labels")
        lab = np.asarray(labels)[indices]
        classes = np.unique(lab)
        target = max(int((lab == c).sum()) for c in classes)
        parts = []
        for c in classes:
            members = indices[lab == c]
            extra = (
                rng.choice(members, target - len(members), replace=True)
                if target > len(members)
                else np.zeros(0, np.int64)
            )
            parts.append(np.concatenate([members, np.asarray(extra, np.int64)]))
        indices = np.concatenate(parts)
    order = rng.permutation(indices)
    steps = max(1, -(-len(order) // batch_size))
    if num_steps is not None:
        if num_steps < steps:
            raise ValueError(f"plan needs {steps} steps but num_steps={num_steps}")
        steps = num_steps
    idx = np.zeros(steps * batch_size, np.int32)
    mask = np.zeros(steps * batch_size, np.float32)
    idx[: len(order)] = order
    mask[: len(order)] = 1.0
    return idx.reshape(steps, batch_size), mask.reshape(steps, batch_size)


def eval_plan(indices: np.ndarray, batch_size: int, num_steps: int | None = None):
    """In-order padded batches over ``indices`` (no shuffling) for evaluation."""
    indices = np.asarray(indices, np.int64)
    steps = max(1, -(-len(indices) // batch_size))
    steps = steps if num_steps is None else max(steps, num_steps)
    idx = np.zeros(steps * batch_size, np.int32)
    mask = np.zeros(steps * batch_size, np.float32)
    idx[: len(indices)] = indices
    mask[: len(indices)] = 1.0
    return idx.reshape(steps, batch_size), mask.reshape(steps, batch_size)


def stack_plans(plans: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Pad plans to a common number of steps with empty steps -> (K, S, B) each."""
    s_max = max(p[0].shape[0] for p in plans)
    b = plans[0][0].shape[1]
    idx = np.zeros((len(plans), s_max, b), np.int32)
    mask = np.zeros((len(plans), s_max, b), np.float32)
    for k, (i, m) in enumerate(plans):
        if i.shape[1] != b:
            raise ValueError("all plans must have the same batch size")
        idx[k, : i.shape[0]] = i
        mask[k, : m.shape[0]] = m
    return idx, mask


def device_data(samples) -> dict[str, jax.Array]:
    """The arrays of an ``MESamples`` that batches are gathered from, on device."""
    return {k: jnp.asarray(getattr(samples, k)) for k in BATCH_KEYS}


def gather_batch(data: dict[str, jax.Array], idx: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
    """Batch dict for ``idx`` (B,) with ``example_mask`` — traceable, use inside jit."""
    batch = {k: jnp.take(v, idx, axis=0) for k, v in data.items()}
    batch["example_mask"] = mask
    return batch
