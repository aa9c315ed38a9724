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

from fedpsyau_jax.training.augmentation import augment
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


# Parameter names that are weight matrices / kernels (Dense and Conv "kernel", the
# GAT's projection "W"). Everything else (biases, norm scales, the positional
# embedding, the GAT's attention vectors a) is not decayed.
DECAYED_PARAM_NAMES = ("kernel", "W")


def weight_decay_mask(params):
    """Pytree of bools, True on the leaves that weight decay applies to."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: getattr(path[-1], "key", None) in DECAYED_PARAM_NAMES, params
    )


def make_optimizer(
    learning_rate: float = 5e-5, weight_decay: float = 0.01, decay_kernels_only: bool = False
) -> optax.GradientTransformation:
    """AdamW (reference defaults lr 5e-5, weight decay 0.01).

    decay_kernels_only: decay only weight matrices / kernels (``weight_decay_mask``);
      False decays every parameter, as the reference does.
    A schedule is NOT baked in here: the fold trainer builds this with lr 1 and passes
    each step's learning rate to the compiled step (``lr_scale``), like β.
    """
    return optax.adamw(learning_rate, weight_decay=weight_decay, mask=weight_decay_mask if decay_kernels_only else None)


def create_train_state(
    model: FedPsyAU, tx: optax.GradientTransformation, key: jax.Array, prior_d=None, batch=None
) -> TrainState:
    init_key, state_key = jax.random.split(key)
    v = init_variables(model, init_key, batch=batch, prior_d=prior_d)
    return TrainState(
        params=v["params"],
        batch_stats=v.get("batch_stats", {}),
        priors=v.get("priors", {}),
        opt_state=tx.init(v["params"]),
        step=jnp.zeros((), jnp.int32),
        key=state_key,
    )


def _variables(state: TrainState, params=None) -> dict:
    v = {"params": state.params if params is None else params, "batch_stats": state.batch_stats}
    if state.priors:
        v["priors"] = state.priors
    return v


def _batch_mask(batch) -> jax.Array:
    m = batch.get("example_mask")
    return jnp.ones(batch["label"].shape, jnp.float32) if m is None else m.astype(jnp.float32)


def make_loss_fn(
    model: FedPsyAU,
    alpha=DEFAULT_ALPHA,
    extra_penalty: Callable[[Any, Any], jax.Array] | None = None,
    au_norm: str = "known_entries",
):
    """loss(params, state, batch, beta, dropout_key) -> (loss, (metrics, new_batch_stats)).

    ``extra_penalty(params, aux)`` adds e.g. a proximal term (federated algorithms).
    ``au_norm``: normalisation of the AU BCE (``losses.masked_au_bce``).
    """

    def loss_fn(params, state: TrainState, batch, beta, dropout_key, aux=None):
        outputs, updates = model.apply(
            _variables(state, params), batch, beta, train=True, rngs={"dropout": dropout_key}, mutable=["batch_stats"]
        )
        loss, parts = fedpsyau_loss(outputs, batch, _batch_mask(batch), alpha, au_norm)
        if extra_penalty is not None:
            pen = extra_penalty(params, aux)
            loss = loss + pen
            parts = dict(parts, penalty=pen, loss=loss)
        return loss, (parts, updates.get("batch_stats", state.batch_stats))

    return loss_fn


def make_train_step(
    model: FedPsyAU,
    tx: optax.GradientTransformation,
    alpha=DEFAULT_ALPHA,
    extra_penalty=None,
    hflip: float = 0.0,
    au_norm: str = "known_entries",
):
    """Un-jitted step (state, batch, beta[, aux, lr_scale]) -> (state, metrics); jit/vmap
    it outside.

    Padded examples (``example_mask`` 0) take part in nothing (loss, BatchNorm batch
    statistics and running averages), so a padded batch trains exactly like the
    unpadded one; a batch whose mask is all zero leaves params, optimiser state and BN
    statistics unchanged.
    hflip: probability of the flow-respecting horizontal flip of each training sample
      (``augmentation``), drawn from the state's key inside the step.
    lr_scale: a traced scalar multiplying the optimiser's update — the learning-rate
      schedule as an argument of the compiled step (build ``tx`` with lr 1); None = 1.
    """
    loss_fn = make_loss_fn(model, alpha, extra_penalty, au_norm)

    def step(state: TrainState, batch, beta, aux=None, lr_scale=None):
        key, dropout_key = jax.random.split(state.key)
        if hflip > 0.0:
            batch = augment(batch, jax.random.fold_in(dropout_key, 0x5EED), hflip)
        (loss, (parts, new_bs)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, state, batch, beta, dropout_key, aux
        )
        updates, new_opt = tx.update(grads, state.opt_state, state.params)
        if lr_scale is not None:
            updates = jax.tree.map(lambda u: u * jnp.asarray(lr_scale, u.dtype), updates)
        new_params = optax.apply_updates(state.params, updates)
        live = jnp.sum(_batch_mask(batch)) > 0
        keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(live, n, o), new, old)
        new_state = state.replace(
            params=keep(new_params, state.params),
            opt_state=keep(new_opt, state.opt_state),
            batch_stats=keep(new_bs, state.batch_stats),
            step=state.step + live.astype(jnp.int32),
            key=key,
        )
        return new_state, parts

    return step


def make_eval_step(model: FedPsyAU, flip_tta: bool = False):
    """(state, batch, beta) -> dict of emotion probabilities, predictions and AU probabilities.

    flip_tta: every output from the mean of the logits on the batch and on its mirror
    image (``test_time_flip``)."""
    from fedpsyau_jax.training.flip_averaging import flip_averaged

    def logits(variables, batch, beta):
        plain = lambda v, b: model.apply(v, b, beta, train=False)
        return (flip_averaged(plain) if flip_tta else plain)(variables, batch)

    def step(state: TrainState, batch, beta):
        emotion, au_gat, au_afe = logits(_variables(state), batch, beta)
        out = {"emotion_prob": jax.nn.softmax(emotion, -1), "pred": jnp.argmax(emotion, -1)}
        if au_gat is not None:
            out["au_prob_gat"] = jax.nn.sigmoid(au_gat)
            out["au_prob_afe"] = jax.nn.sigmoid(au_afe)
        return out

    return step
