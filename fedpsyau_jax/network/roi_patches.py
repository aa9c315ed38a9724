"""ROI patch cutting, written with jnp so it runs inside the jitted step.

For each of the 65 keypoints a 5x5 window of ``flow128`` centred on (x, y), with
row index = y and column index = x (the reference transposes this; we do not).
A window that would cross the border is shifted inside the image.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

PATCH = 5
HALF = PATCH // 2


def patch_origins(landmarks: jax.Array, height: int, width: int) -> jax.Array:
    """Top-left (row, col) of each window: landmarks (..., K, 2) as (x, y) -> (..., K, 2) int32."""
    xy = jnp.round(landmarks).astype(jnp.int32)
    col0 = jnp.clip(xy[..., 0] - HALF, 0, width - PATCH)
    row0 = jnp.clip(xy[..., 1] - HALF, 0, height - PATCH)
    return jnp.stack([row0, col0], axis=-1)


def cut_patches(flow: jax.Array, landmarks: jax.Array) -> jax.Array:
    """flow (H, W, C), landmarks (K, 2) (x, y) -> patches (K, 5, 5, C).

    One gather per call (vmap it over the batch): the index grid is origin + offsets,
    which XLA lowers to a single gather instead of K dynamic slices.
    """
    h, w, _ = flow.shape
    origin = patch_origins(landmarks, h, w)  # (K, 2)
    off = jnp.arange(PATCH)
    rows = origin[:, 0, None, None] + off[None, :, None]  # (K, 5, 1)
    cols = origin[:, 1, None, None] + off[None, None, :]  # (K, 1, 5)
    return flow[rows, cols]  # (K, 5, 5, C)


def cut_patches_batch(flow: jax.Array, landmarks: jax.Array) -> jax.Array:
    """flow (B, H, W, C), landmarks (B, K, 2) -> (B, K, 5, 5, C)."""
    return jax.vmap(cut_patches)(flow, landmarks)
