"""Client-level differential privacy: the mechanism and its accountant (pure functions).

The mechanism (DP-FedAvg style, Gaussian): every participating client's update
Δ_i = W_i − W_start is clipped to L2 norm ≤ C over the whole parameter pytree; the
server adds N(0, (z·C)² I) to the SUM of the clipped updates. Adding or removing one
client changes that sum by at most C, so the noise gives (ε, δ)-DP at the level of a
client — of a whole site, or of one person when every subject is its own client. The
same functions serve the stacked simulator and the Flower deployment (one
implementation of the math).

``epsilon_after_rounds`` turns (z, sampling, rounds, δ) into ε with the RDP accountant
of ``dp-accounting``: Poisson sampling of clients with rate q (add/remove-one
neighbours), fixed-size sampling of m of K clients without replacement (replace-one
neighbours, sensitivity 2C), or every client every round (q = 1). Settings that cannot be accounted
(z ≤ 0: no noise; q outside (0, 1]; δ outside (0, 1)) raise ``PrivacyError``.

What this protects and what not: ε bounds what the released models (every round's
aggregate) reveal about whether one client took part; it does not hide anything a
client's own training set reveals to that client, and clipping + noise cost accuracy.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import jax
import jax.numpy as jnp

from fedpsyau_jax.core.errors import UserError

SAMPLINGS = ("all", "poisson", "fixed")


class PrivacyError(UserError):
    """DP settings that cannot be accounted or applied (the message says which)."""


def global_norm(tree: Any) -> jax.Array:
    """L2 norm over every leaf of a pytree."""
    return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in jax.tree.leaves(tree)))


def clip_update(update: Any, clip_norm: float) -> tuple[Any, jax.Array]:
    """(update scaled to norm ≤ clip_norm, its norm before clipping)."""
    norm = global_norm(update)
    scale = jnp.minimum(1.0, clip_norm / jnp.maximum(norm, 1e-12))
    return jax.tree.map(lambda x: (x * scale).astype(x.dtype), update), norm


def clip_rows(updates: Any, clip_norm: float) -> tuple[Any, jax.Array]:
    """``clip_update`` for every row of a stacked pytree (leaves (C, …)) -> (clipped, norms (C,))."""
    return jax.vmap(lambda u: clip_update(u, clip_norm))(updates)


def noisy_sum(clipped: Any, participate: jax.Array, key: jax.Array, noise_multiplier: float, clip_norm: float) -> Any:
    """Σ_i participate_i · Δ_i + N(0, (z·C)²) per coordinate, one draw per leaf.

    clipped: stacked clipped updates (C, …); participate (C,) {0, 1}."""
    leaves, treedef = jax.tree.flatten(clipped)
    keys = jax.random.split(key, len(leaves))
    std = noise_multiplier * clip_norm
    out = []
    for x, k in zip(leaves, keys):
        w = participate.reshape((-1,) + (1,) * (x.ndim - 1)).astype(x.dtype)
        s = jnp.sum(w * x, axis=0)
        out.append(s + (std * jax.random.normal(k, s.shape, jnp.float32)).astype(s.dtype))
    return jax.tree.unflatten(treedef, out)


@dataclasses.dataclass(frozen=True)
class DPSettings:
    """clip_norm C, noise_multiplier z, delta δ, and the client sampling per round:
    "all" (every client), "poisson" (each with probability ``rate``), "fixed"
    (``per_round`` of ``num_clients`` without replacement). ``allow_no_noise``: accept
    z = 0 (clipping only, ε = inf) for the z = 0 point of a utility–privacy curve."""

    clip_norm: float
    noise_multiplier: float
    delta: float = 1e-5
    sampling: str = "all"
    rate: float = 1.0
    per_round: int = 0
    num_clients: int = 0
    allow_no_noise: bool = False

    def check(self) -> None:
        if self.clip_norm <= 0:
            raise PrivacyError(f"dp.clip_norm {self.clip_norm}: must be > 0")
        if self.noise_multiplier < 0:
            raise PrivacyError(f"dp.noise_multiplier {self.noise_multiplier}: must be >= 0")
        if self.noise_multiplier == 0 and not self.allow_no_noise:
            raise PrivacyError(
                f"dp.noise_multiplier {self.noise_multiplier}: no noise, ε is infinite "
                "(cannot be accounted); use z > 0, or dp.allow_no_noise=true for a "
                "clipping-only baseline reported as ε = inf"
            )
        if not 0 < self.delta < 1:
            raise PrivacyError(f"dp.delta {self.delta}: must be in (0, 1)")
        if self.sampling not in SAMPLINGS:
            raise PrivacyError(f"dp.sampling {self.sampling!r}: choose from {', '.join(SAMPLINGS)}")
        if self.sampling == "poisson" and not 0 < self.rate <= 1:
            raise PrivacyError(f"dp.rate {self.rate}: Poisson sampling needs 0 < rate <= 1")
        if self.sampling == "fixed" and not 0 < self.per_round <= self.num_clients:
            raise PrivacyError(
                f"dp.per_round {self.per_round} of {self.num_clients} clients: "
                "fixed-size sampling needs 0 < per_round <= num_clients"
            )


def epsilon_after_rounds(s: DPSettings, rounds: int) -> float:
    """ε of ``rounds`` releases of the noisy aggregate under ``s`` (RDP accountant)."""
    from dp_accounting import GaussianDpEvent, PoissonSampledDpEvent, SampledWithoutReplacementDpEvent
    from dp_accounting.rdp import RdpAccountant
    from dp_accounting.privacy_accountant import NeighboringRelation

    s.check()
    if rounds < 0:
        raise PrivacyError(f"rounds {rounds}: must be >= 0")
    if rounds == 0:
        return 0.0
    if s.noise_multiplier == 0:  # clipping-only baseline (allow_no_noise)
        return float("inf")
    if s.sampling == "fixed":
        # Replace-one neighbours: swapping one client's clipped update (norm <= C) for
        # another's moves the sum by up to 2C, so the noise is z·C / (2C) = z/2 times
        # the sensitivity (dp-accounting's multiplier is std / L2 sensitivity).
        acc = RdpAccountant(neighboring_relation=NeighboringRelation.REPLACE_ONE)
        event = SampledWithoutReplacementDpEvent(s.num_clients, s.per_round, GaussianDpEvent(s.noise_multiplier / 2))
    else:
        # Add/remove-one neighbours: one client moves the sum by at most C.
        gauss = GaussianDpEvent(s.noise_multiplier)
        acc = RdpAccountant()
        rate = 1.0 if s.sampling == "all" else s.rate
        event = gauss if rate == 1.0 else PoissonSampledDpEvent(rate, gauss)
    # dp-accounting warns for every RDP order whose series does not converge and drops
    # that order (a valid, slightly looser bound); once per round that floods the log.
    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)
    try:
        acc.compose(event, rounds)
        return float(acc.get_epsilon(s.delta))
    finally:
        absl.setLevel(level)


def noisy_group_totals(
    clipped: Any,
    participate: jax.Array,
    groups: jax.Array,
    num_groups: int,
    key: jax.Array,
    noise_multiplier: float | jax.Array,
    clip_norm: float | jax.Array,
) -> Any:
    """``noisy_sum`` per federation group (leaves (G, …)).

    Group g gets Σ_{i in g} p_i Δ_i + N(0, (z·C)²): one independent draw per group and
    leaf (groups are the independent repeats of one experiment). The draw depends on
    the key and the group count only, not on which rows are passed."""
    leaves, treedef = jax.tree.flatten(clipped)
    keys = jax.random.split(key, len(leaves))
    std = jnp.asarray(noise_multiplier, jnp.float32) * jnp.asarray(clip_norm, jnp.float32)
    out = []
    for x, k in zip(leaves, keys):
        w = participate.reshape((-1,) + (1,) * (x.ndim - 1)).astype(x.dtype)
        s = jax.ops.segment_sum(w * x, groups, num_segments=num_groups)
        out.append(s + (std * jax.random.normal(k, s.shape, jnp.float32)).astype(s.dtype))
    return jax.tree.unflatten(treedef, out)


def denominator(s: DPSettings, clients_per_group: int) -> float:
    """The fixed divisor m of the noisy sum (its mean is the released model): K for
    "all", per_round for "fixed", the expected count q·K for "poisson" (dividing by the
    realised count would leak it)."""
    if s.sampling == "fixed":
        return float(s.per_round)
    if s.sampling == "poisson":
        return float(s.rate * clients_per_group)
    return float(clients_per_group)


def sample_participants(rng, s: DPSettings, clients_per_group: int, num_groups: int):
    """(G·K,) float32 {0, 1}, group-major: who takes part in this round, per group.

    rng: ``numpy.random.Generator`` (derived from the run's seed and the round, so a
    resumed run draws the same clients)."""
    import numpy as np

    k = clients_per_group
    out = np.zeros((num_groups, k), np.float32)
    for g in range(num_groups):
        if s.sampling == "all":
            out[g] = 1.0
        elif s.sampling == "fixed":
            out[g, rng.choice(k, size=s.per_round, replace=False)] = 1.0
        else:
            out[g] = (rng.random(k) < s.rate).astype(np.float32)
    return out.reshape(-1)
