"""Train state pytree and the jitted train/eval steps shared by every protocol.

``TrainState`` holds params, batch_stats, priors (D), optimiser state, step and a PRNG
key. ``train_step(state, batch, beta)`` does forward, backward and an optax update;
β and D are traced values, so neither a β schedule nor a new fold's D recompiles.
Batches carry an optional ``example_mask`` (B,) so padded batches of vmapped folds and
clients count only their real examples.
"""
from __future__ import annotations

from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax

from fedpsyau_jax.training.losses import DEFAULT_ALPHA, fedpsyau_loss
from fedpsyau_jax.network.model import FedPsyAU, init_variables


@flax.struct.dataclass
class TrainState:
    params: Any
    batch_stats: Any
    priors: Any
    opt_state: Any
    step: jax.Array
    key: jax.Array


def make_optimizer(learning_rate: float = 5e-5, weight_decay: float = 0.01) -> optax.GradientTransformation:
    """AdamW with the reference defaults (lr 5e-5, weight decay 0.01)."""
    return optax.adamw(learning_rate, weight_decay=weight_decay)


def create_train_state(model: FedPsyAU, tx: optax.GradientTransformation, key: jax.Array,
                       prior_d=None, batch=None) -> TrainState:
    init_key, state_key = jax.random.split(key)
    v = init_variables(model, init_key, batch=batch, prior_d=prior_d)
    return TrainState(params=v["params"], batch_stats=v.get("batch_stats", {}),
                      priors=v.get("priors", {}), opt_state=tx.init(v["params"]),
                      step=jnp.zeros((), jnp.int32), key=state_key)


def _variables(state: TrainState, params=None) -> dict:
    v = {"params": state.params if params is None else params, "batch_stats": state.batch_stats}
    if state.priors:
        v["priors"] = state.priors
    return v


def _batch_mask(batch) -> jax.Array:
    m = batch.get("example_mask")
    return jnp.ones(batch["label"].shape, jnp.float32) if m is None else m.astype(jnp.float32)


def make_loss_fn(model: FedPsyAU, alpha=DEFAULT_ALPHA,
                 extra_penalty: Callable[[Any, Any], jax.Array] | None = None):
    """loss(params, state, batch, beta, dropout_key) -> (loss, (metrics, new_batch_stats)).

    ``extra_penalty(params, aux)`` adds e.g. a proximal term (federated algorithms).
    """

    def loss_fn(params, state: TrainState, batch, beta, dropout_key, aux=None):
        outputs, updates = model.apply(_variables(state, params), batch, beta=beta, train=True,
                                       rngs={"dropout": dropout_key}, mutable=["batch_stats"])
        loss, parts = fedpsyau_loss(outputs, batch, _batch_mask(batch), alpha)
        if extra_penalty is not None:
            pen = extra_penalty(params, aux)
            loss = loss + pen
            parts = dict(parts, penalty=pen, loss=loss)
        return loss, (parts, updates.get("batch_stats", state.batch_stats))

    return loss_fn


def make_train_step(model: FedPsyAU, tx: optax.GradientTransformation, alpha=DEFAULT_ALPHA,
                    extra_penalty=None):
    """Un-jitted step (state, batch, beta[, aux]) -> (state, metrics); jit/vmap it outside.

    A batch whose ``example_mask`` is all zero (padding at the end of a short client
    or fold) leaves params, optimiser state and BN statistics unchanged.
    """
    loss_fn = make_loss_fn(model, alpha, extra_penalty)

    def step(state: TrainState, batch, beta, aux=None):
        key, dropout_key = jax.random.split(state.key)
        (loss, (parts, new_bs)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, state, batch, beta, dropout_key, aux)
        updates, new_opt = tx.update(grads, state.opt_state, state.params)
        new_params = optax.apply_updates(state.params, updates)
        live = jnp.sum(_batch_mask(batch)) > 0
        keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(live, n, o), new, old)
        new_state = state.replace(
            params=keep(new_params, state.params), opt_state=keep(new_opt, state.opt_state),
            batch_stats=keep(new_bs, state.batch_stats), step=state.step + live.astype(jnp.int32),
            key=key)
        return new_state, parts

    return step


def make_eval_step(model: FedPsyAU):
    """(state, batch, beta) -> dict of emotion probabilities, predictions and AU probabilities."""

    def step(state: TrainState, batch, beta):
        emotion, au_gat, au_afe = model.apply(_variables(state), batch, beta=beta, train=False)
        out = {"emotion_prob": jax.nn.softmax(emotion, -1), "pred": jnp.argmax(emotion, -1)}
        if au_gat is not None:
            out["au_prob_gat"] = jax.nn.sigmoid(au_gat)
            out["au_prob_afe"] = jax.nn.sigmoid(au_afe)
        return out

    return step
