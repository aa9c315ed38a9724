"""Client-level differential privacy on Flower: the simulator's mechanism, Flower's pieces.

The mechanism is ``federated.dp_aggregation`` (R the last release, public):

    site i:   Δ_i = U_i − R, clipped to ‖Δ_i‖ ≤ C over its whole upload
    server:   R' = R + (Σ_i clip(Δ_i) + N(0, (z·C)² I)) / m,   m fixed (K, or per_round)

and it is assembled from Flower's own DP building blocks (flwr 1.41, Message API):

- ``fixedclipping_mod`` (client): clips the reply against the arrays the site RECEIVED
  (reply := received + clip(reply − received)). So under DP the server sends R itself,
  under the upload's names and order (``FedPsyAUStrategy`` with ``dp``), from round 1
  on (R_0 = the common initial model, ``initial_reference``).
- ``DifferentialPrivacyClientSideFixedClipping`` (server): passes the clipping norm to
  the sites in the train config and adds N(0, (z·C/m)²) to every array of what the
  wrapped strategy's ``aggregate_train`` returns, m = its ``num_sampled_clients``. The
  wrapped strategy returns R + Σ clip(Δ_i)/m (``dp_reduce`` with z = 0: the project's
  own function, which re-clips on the server too — a reply whose site skipped the
  mod still moves the sum by at most C), so the release is exactly R' above.
- ε: ``privacy.epsilon_after_rounds`` (the simulator's RDP accountant), not Flower's
  accountant: Flower's refuses a strategy whose ``aggregate_train`` is not
  ``FedAvg.aggregate_train`` and has no fixed-size (replace-one) sampling.

Flower's noise comes from NumPy's global generator, unseeded (OS entropy): the noise
of a deployment is not reproducible, on purpose (a seeded noise is not secret). The
simulator draws it from the run's seed; with z = 0 both give the same models.

What the site does with a release (``Site.receive_release``): it is told which round
made R and whether its own reply was in it; it keeps its clipped contribution
c_i = R + clip(Δ_i) of the round it took part in (in ``context.state`` and its
``site-dir``), so P-FedProx can take itself out of S = m·R'.
"""

from __future__ import annotations

import functools
import logging

LOG = logging.getLogger("fedpsyau.flower.dp")

#: train/evaluate config keys of a DP run (per destination node)
RELEASE_ROUND = "dp-release-round"  # the round whose release the arrays are (0: R_0)
IN_RELEASE = "dp-in-release"  # whether this node's reply entered that release


def num_sites(dp) -> int:
    return int(dp.num_clients)


def divisor(dp) -> float:
    """m, the fixed divisor of the noisy sum (K for "all", per_round for "fixed")."""
    from fedpsyau_jax.federated.privacy import denominator

    return float(denominator(dp, num_sites(dp)))


def initial_reference(model, tx, algorithm, seed: int) -> dict:
    """R_0: the upload of the common initial model, built from the run's seed exactly
    as every site builds its own round-0 model (``runner.init_row_states``: params and
    BN statistics depend on the seed only)."""
    import jax
    import numpy as np

    from fedpsyau_jax.federated.upload import make_upload
    from fedpsyau_jax.training.train_state import create_train_state

    state = create_train_state(model, tx, jax.random.key(seed))
    up = make_upload(state, 1.0, algorithm)
    return jax.tree.map(np.asarray, {"params": up.params, "batch_stats": up.batch_stats})


def wrap_strategy(strategy, dp):
    """Flower's central-DP wrapper (client-side clipping) around ``strategy``."""
    from flwr.serverapp.strategy import DifferentialPrivacyClientSideFixedClipping

    m = divisor(dp)
    if m != int(m) or m <= 0:
        raise ValueError(f"dp divisor {m}: must be a positive integer")
    return DifferentialPrivacyClientSideFixedClipping(
        strategy,
        noise_multiplier=float(dp.noise_multiplier),
        clipping_norm=float(dp.clip_norm),
        num_sampled_clients=int(m),
    )


def release_mean(algorithm, reference: dict, uploads: list, dp) -> tuple[dict, list[float]]:
    """R + Σ clip(U_i − R) / m over the accepted uploads, no noise (Flower's wrapper adds
    it), with the project's ``dp_reduce``; -> (release tree, each reply's ‖Δ_i‖)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from fedpsyau_jax.federated.client_stack import stack_states

    stacked = stack_states(uploads)
    new_ref, norms = _jitted_reduce()(
        stacked["params"],
        stacked["batch_stats"],
        jax.tree.map(jnp.asarray, reference),
        jnp.float32(dp.clip_norm),
        jnp.float32(divisor(dp)),
    )
    return jax.tree.map(np.asarray, new_ref), [float(n) for n in np.asarray(norms)]


@functools.cache
def _jitted_reduce():
    """``dp_reduce`` with z = 0 for k stacked replies as one compiled program: eagerly,
    each of the ~100 leaves' subtract/clip/sum ops compiles on its own (about 20 s a
    release on 2 cores, against one compile of a few seconds reused every round)."""
    import jax
    import jax.numpy as jnp

    from fedpsyau_jax.federated.dp_aggregation import dp_reduce
    from fedpsyau_jax.federated.upload import ClientUpload

    def reduce(params, batch_stats, reference, clip_norm, denom):
        k = jax.tree.leaves(params)[0].shape[0]
        up = ClientUpload(params=params, batch_stats=batch_stats, num_samples=jnp.ones(k, jnp.float32))
        ref = jax.tree.map(lambda r: jnp.broadcast_to(r, (k, *r.shape)), reference)
        new_ref, _, norms = dp_reduce(
            up, ref, jnp.ones(k, jnp.float32), jax.random.key(0), jnp.zeros(k, jnp.int32), 1, clip_norm, 0.0, denom
        )
        return jax.tree.map(lambda x: x[0], new_ref), norms

    return jax.jit(reduce)


def epsilon(dp, releases: int) -> float:
    from fedpsyau_jax.federated.privacy import epsilon_after_rounds

    return epsilon_after_rounds(dp, releases)


def check_accountable(dp, rounds: int) -> None:
    """Refuse, before round 1, settings whose ε cannot be computed (one line)."""
    epsilon(dp, rounds)


def clip_mod(msg, context, call_next):
    """The ClientApp's train mod: in a DP run (run config ``dp``) Flower's
    ``fixedclipping_mod`` (which refuses a train message without the clipping norm: a
    DP site never sends an unclipped update); otherwise nothing."""
    from flwr.clientapp.mod import fixedclipping_mod

    from fedpsyau_jax.federated.flower.settings import _bool

    if _bool(context.run_config.get("dp", False)):
        return fixedclipping_mod(msg, context, call_next)
    return call_next(msg, context)


def contribution(release: dict, upload: dict, clip_norm: float) -> dict:
    """c_i = R + clip(U_i − R): what the site's clipped reply puts into the sum (the
    same clip as ``fixedclipping_mod`` and the simulator's ``dp_reduce``)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    c = _jitted_contribution()(
        jax.tree.map(jnp.asarray, release), jax.tree.map(jnp.asarray, upload), jnp.float32(clip_norm)
    )
    return jax.tree.map(np.asarray, c)


@functools.cache
def _jitted_contribution():
    """``contribution`` as one compiled program (see ``_jitted_reduce``)."""
    import jax

    from fedpsyau_jax.federated.privacy import clip_update

    def fn(release, upload, clip_norm):
        clipped, _ = clip_update(jax.tree.map(lambda u, r: u - r, upload, release), clip_norm)
        return jax.tree.map(lambda r, d: r + d, release, clipped)

    return jax.jit(fn)
