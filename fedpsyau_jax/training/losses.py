"""Losses: L = α1·CE(emotion) + α2·BCE(head A, AFE) + α3·BCE(head B, GAT).

BCE is a mean over the known AU entries (``au_mask``) and exactly zero when none is
known, so SMIC/DFME-style samples train the emotion head only. ``example_mask``
(B,) removes padded examples of vmapped clients/folds from every term.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

DEFAULT_ALPHA = (0.2, 0.8, 0.8)


def masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
    """Σ mask·v / Σ mask, and 0 (with a zero gradient) when the mask is empty."""
    total = jnp.sum(mask)
    return jnp.sum(values * mask) / jnp.maximum(total, 1.0)


def emotion_ce(
    logits: jax.Array, labels: jax.Array, example_mask: jax.Array, example_weight: jax.Array | None = None
) -> jax.Array:
    """Mean CE over real examples; with ``example_weight`` (B,) (e.g. each example's
    class weight) the weighted mean Σ w·ce / Σ w (class-balanced CE)."""
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return masked_mean(ce, example_mask if example_weight is None else example_mask * example_weight)


AU_NORMS = ("examples", "known_entries")
AU_POS_WEIGHTS = ("none", "balanced")


def weighted_bce(logits: jax.Array, targets: jax.Array, pos_weight: jax.Array | None = None) -> jax.Array:
    """−[w⁺·y·log σ(x) + (1 − y)·log(1 − σ(x))] elementwise; ``pos_weight`` w⁺
    broadcasts over the last axis (one weight per AU), None = 1 (plain BCE)."""
    if pos_weight is None:
        return optax.sigmoid_binary_cross_entropy(logits, targets)
    return pos_weight * targets * jax.nn.softplus(-logits) + (1.0 - targets) * jax.nn.softplus(logits)


def au_pos_weights(au: jax.Array, au_mask: jax.Array, cap: float = 20.0) -> jax.Array:
    """Per-AU positive weight n⁻/n⁺ over the known labels (12,), clipped to [1, cap]
    (an AU with no positive gets 1): with it a rare AU's positives weigh as much in
    total as its negatives, so "always absent" stops being a good minimum."""
    known = au_mask > 0
    pos = jnp.sum(known & (au > 0.5), axis=0)
    neg = jnp.sum(known, axis=0) - pos
    return jnp.clip(jnp.where(pos > 0, neg / jnp.maximum(pos, 1), 1.0), 1.0, cap).astype(jnp.float32)


def masked_au_bce(
    logits: jax.Array,
    au: jax.Array,
    au_mask: jax.Array,
    example_mask: jax.Array,
    norm: str = "examples",
    pos_weight: jax.Array | None = None,
) -> jax.Array:
    """Binary cross-entropy over the known AU entries of real examples.

    pos_weight: (12,) weight of the positive term per AU (``au_pos_weights``), or None.

    norm "examples": Σ over known entries / (real examples × 12). Every AU-labelled
      sample carries the same weight whatever its batch-mates: in a batch of 31 SMIC
      samples (no AU labels) and one CASME II sample, that sample's AU loss counts
      1/32, as it would in the whole training set, not the full AU weight.
    norm "known_entries": mean over the known entries of the batch (the loss
      as first defined): a batch with one AU-labelled sample gives it the whole weight.
    """
    bce = weighted_bce(logits, au, pos_weight)
    known = au_mask * example_mask[:, None]
    if norm == "known_entries":
        return masked_mean(bce, known)
    if norm != "examples":
        raise ValueError(f"AU loss norm {norm!r}: choose from {', '.join(AU_NORMS)}")
    return jnp.sum(bce * known) / jnp.maximum(jnp.sum(example_mask) * au.shape[-1], 1.0)


def fedpsyau_loss(outputs, batch, example_mask=None, alpha=DEFAULT_ALPHA, au_norm: str = "known_entries"):
    """Total loss and its parts. ``outputs`` = (emotion, au_gat, au_afe) of the model.

    au_gat/au_afe may be None (flow-only baseline): those terms are then 0. A batch
    entry ``ce_weight`` (B,) weights each example's CE (class balance); absent = 1.
    A batch entry ``au_pos_weight`` (12,) weights the positive term of both AU BCEs
    (``au_pos_weights``); absent = plain BCE.
    α = (emotion CE, head A = AFE, head B = GAT).
    """
    emotion, au_gat, au_afe = outputs
    labels = batch["label"]
    if example_mask is None:
        example_mask = jnp.ones(labels.shape, jnp.float32)
    ce = emotion_ce(emotion, labels, example_mask, batch.get("ce_weight"))
    zero = jnp.zeros((), jnp.float32)
    pw = batch.get("au_pos_weight")
    bce_afe = (
        zero if au_afe is None else masked_au_bce(au_afe, batch["au"], batch["au_mask"], example_mask, au_norm, pw)
    )
    bce_gat = (
        zero if au_gat is None else masked_au_bce(au_gat, batch["au"], batch["au_mask"], example_mask, au_norm, pw)
    )
    # A weight that is a Python zero drops its term from the loss, so the backward of
    # whatever feeds only that term is never built: with α_emotion = 0 (AU pre-training)
    # the dual-stream Inception's backward is skipped. 0 · term would still compute it
    # (XLA keeps 0 · x, which is NaN for x = inf) and give the same gradients.
    weighted = [a * t for a, t in zip(alpha, (ce, bce_afe, bce_gat)) if not _is_static_zero(a)]
    total = sum(weighted[1:], weighted[0]) if weighted else zero
    return total, {"loss": total, "ce": ce, "bce_afe": bce_afe, "bce_gat": bce_gat}


def _is_static_zero(a) -> bool:
    return isinstance(a, (int, float, np.number)) and a == 0


def proximal_term(params, anchor, mu) -> jax.Array:
    """(μ/2)·‖W − W_anchor‖² over all parameter leaves (squared, as in FedProx)."""
    sq = jax.tree.map(lambda w, a: jnp.sum(jnp.square(w - a)), params, anchor)
    return 0.5 * mu * sum(jax.tree.leaves(sq))
