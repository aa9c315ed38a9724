"""Losses of SPEC §6: L = α1·CE(emotion) + α2·BCE(head A, AFE) + α3·BCE(head B, GAT).

BCE is a mean over the known AU entries (``au_mask``) and exactly zero when none is
known, so SMIC/DFME-style samples train the emotion head only. ``example_mask``
(B,) removes padded examples of vmapped clients/folds from every term.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

DEFAULT_ALPHA = (0.2, 0.8, 0.8)


def masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
    """Σ mask·v / Σ mask, and 0 (with a zero gradient) when the mask is empty."""
    total = jnp.sum(mask)
    return jnp.sum(values * mask) / jnp.maximum(total, 1.0)


def emotion_ce(logits: jax.Array, labels: jax.Array, example_mask: jax.Array,
               example_weight: jax.Array | None = None) -> jax.Array:
    """Mean CE over real examples; with ``example_weight`` (B,) (e.g. each example's
    class weight) the weighted mean Σ w·ce / Σ w (class-balanced CE)."""
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return masked_mean(ce, example_mask if example_weight is None else example_mask * example_weight)


AU_NORMS = ("examples", "known_entries")


def masked_au_bce(logits: jax.Array, au: jax.Array, au_mask: jax.Array,
                  example_mask: jax.Array, norm: str = "examples") -> jax.Array:
    """Binary cross-entropy over the known AU entries of real examples.

    norm "examples": Σ over known entries / (real examples × 12). Every AU-labelled
      sample carries the same weight whatever its batch-mates: in a batch of 31 SMIC
      samples (no AU labels) and one CASME II sample, that sample's AU loss counts
      1/32, as it would in the whole training set, not the full AU weight.
    norm "known_entries": mean over the known entries of the batch (SPEC §6 as
      first written): a batch with one AU-labelled sample gives it the whole weight.
    """
    bce = optax.sigmoid_binary_cross_entropy(logits, au)
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
    α = (emotion CE, head A = AFE, head B = GAT), SPEC §6.
    """
    emotion, au_gat, au_afe = outputs
    labels = batch["label"]
    if example_mask is None:
        example_mask = jnp.ones(labels.shape, jnp.float32)
    ce = emotion_ce(emotion, labels, example_mask, batch.get("ce_weight"))
    zero = jnp.zeros((), jnp.float32)
    bce_afe = zero if au_afe is None else masked_au_bce(au_afe, batch["au"], batch["au_mask"], example_mask, au_norm)
    bce_gat = zero if au_gat is None else masked_au_bce(au_gat, batch["au"], batch["au_mask"], example_mask, au_norm)
    total = alpha[0] * ce + alpha[1] * bce_afe + alpha[2] * bce_gat
    return total, {"loss": total, "ce": ce, "bce_afe": bce_afe, "bce_gat": bce_gat}


def proximal_term(params, anchor, mu) -> jax.Array:
    """(μ/2)·‖W − W_anchor‖² over all parameter leaves (squared, as in FedProx)."""
    sq = jax.tree.map(lambda w, a: jnp.sum(jnp.square(w - a)), params, anchor)
    return 0.5 * mu * sum(jax.tree.leaves(sq))
