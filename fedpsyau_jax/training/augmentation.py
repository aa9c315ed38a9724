"""Flow-respecting augmentation inside the jitted train step (explicit key).

Horizontal flip of one sample (input encoding: per-sample, per-channel min–max of
u, v, strain to [0, 1]):
- the flow images are mirrored left↔right; the horizontal flow component changes
  sign, which on the min–max encoding is exactly u ↦ 1 − u (min and max swap);
  v and the strain magnitude are unchanged;
- landmark x ↦ (W − 1) − x in the 128-px frame, then the 65 tokens are permuted
  left↔right (``keypoints.MIRROR_65``) so that token k still names the same facial
  point (the right brow's outer end stays token 0);
- labels and AU targets are unchanged (AUs are parsed without their L/R side).

Whether a sample is flipped comes from a counter-based hash of the key and the
sample's index in the batch (``hash_dropout.keep_mask``), so sample b gets the same
decision whatever the batch size or padding.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fedpsyau_jax.network.hash_dropout import keep_mask
from fedpsyau_jax.core.keypoints import MIRROR_65

FLOW128_WIDTH = 128


def _flip_flow(flow: jax.Array) -> jax.Array:
    """(B, H, W, 3) mirrored along W, u ↦ 1 − u."""
    f = flow[:, :, ::-1, :]
    return jnp.concatenate([1.0 - f[..., :1], f[..., 1:]], axis=-1)


def flip_batch(batch: dict, flip: jax.Array) -> dict:
    """``batch`` with the samples where ``flip`` (B,) is True mirrored (see module doc)."""
    sel = lambda new, old: jnp.where(flip.reshape((-1,) + (1,) * (old.ndim - 1)), new, old)
    out = dict(batch)
    for k in ("flow128", "flow28"):
        x = jnp.asarray(batch[k], jnp.float32)
        out[k] = sel(_flip_flow(x), x)
    lm = jnp.asarray(batch["landmarks"], jnp.float32)
    mirrored = jnp.stack([(FLOW128_WIDTH - 1) - lm[..., 0], lm[..., 1]], axis=-1)[:, MIRROR_65]
    out["landmarks"] = sel(mirrored, lm)
    return out


def random_flip(batch: dict, key: jax.Array, p: float = 0.5) -> dict:
    """Flip each sample with probability ``p`` (decisions from ``key``)."""
    if p <= 0.0:
        return batch
    flip = ~keep_mask(key, batch["landmarks"].shape[:1], p)  # True with probability p
    return flip_batch(batch, flip)


def augment(batch: dict, key: jax.Array, hflip: float = 0.0) -> dict:
    """All configured augmentations (today: horizontal flip with probability ``hflip``)."""
    return random_flip(batch, key, hflip)
