"""Local training and evaluation of all clients, vmapped over the client axis.

``LocalTrainer.train(states, anchors, mu, data, idx, mask, betas[, lrs, class_w, au_w])``:
    states   TrainState, leaves (C, …)      — donated, updated in place
    anchors  params pytree (C, …)            — proximal anchors (ignored when μ = 0)
    mu       () float32                      — proximal coefficient (traced: one compile
                                               serves every algorithm)
    data     dict of dataset arrays (N, …)   — on device once, shared by all clients
    idx      (C, T, B) int32, mask (C, T, B) — padded step plans (batching.stack_plans)
    betas    (T,) float32                    — β of each step (traced: no recompiles)
    lrs      (C, T) float32 or None          — each step's learning-rate factor (the
                                               recipe's schedule, like β an argument of
                                               the compiled step; None: 1, the rate in tx)
    class_w  (C, K) float32 or None          — per-client CE class weights (None: 1)
    au_w     (C, 12) float32 or None         — per-client AU positive weights (only with
                                               ``au_pos_weight``; None: plain BCE)
  -> states, mean_loss (C,) (mean over each client's live steps), loss (C, T)

``LocalTrainer.evaluate(states, data, idx, mask) -> pred (C, S, B), prob (C, S, B, K)``;
``LocalTrainer.evaluate_au(states, data, idx, mask) -> AU probabilities of both heads
(C, S, B, 12) each`` (models with an AU branch).

Inside: ``vmap`` over clients of the un-jitted ``train_state.make_train_step`` (with
the proximal term as ``extra_penalty``), either scanned over all T steps in one
program (mode "scan") or as one jitted step per batch (mode "step", the faster one on
XLA:CPU — see ``make_local_trainer``). Clients of different sizes run together: their
padded steps (mask all zero) are no-ops.
``shard_clients`` places the client axis across devices; the same jitted functions
then run SPMD-partitioned (GSPMD propagates the input sharding).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec as P

from fedpsyau_jax.network.model import init_program
from fedpsyau_jax.training.batching import gather_batch
from fedpsyau_jax.training.sharding import over_rows, replicate, row_mesh, shard_rows  # noqa: F401 (replicate: re-exported)
from fedpsyau_jax.training.losses import DEFAULT_ALPHA, proximal_term
from fedpsyau_jax.training.train_state import create_train_state, make_eval_step, make_train_step


def _prox_penalty(params, aux):
    anchor, mu = aux
    return proximal_term(params, anchor, mu)


@dataclasses.dataclass(frozen=True)
class LocalTrainer:
    """train / evaluate as documented above; ``init_states(keys (G,), priors (G, 12, 12))``
    -> G fresh TrainStates stacked (one jitted, vmapped ``create_train_state``)."""

    train: Callable[..., Any]
    evaluate: Callable[..., Any]
    init_states: Callable[..., Any] | None = None
    mesh: Mesh | None = None  # set: the row axis is split over its devices
    evaluate_au: Callable[..., Any] | None = None  # None: the model has no AU branch


MODES = ("scan", "step")


# The client axis is spread over devices by the same mechanism as fold chunks
# (``training.sharding``: shard_map per device on its block of rows).
_over_clients = over_rows


def make_local_trainer(
    model,
    tx,
    alpha=DEFAULT_ALPHA,
    mode: str = "scan",
    mesh: Mesh | None = None,
    hflip: float = 0.0,
    au_norm: str = "known_entries",
    au_pos_weight: bool = False,
    eval_flip: bool = False,
) -> LocalTrainer:
    """Jitted vmapped local training and evaluation for ``model`` and optimiser ``tx``.

    mode "scan": the whole round (all T steps) is one compiled ``lax.scan``.
    mode "step": one compiled vmapped step, called T times from Python. Same numbers
      (tested); exists because XLA:CPU (jax 0.10.2) runs the kernel-gradient
      convolutions ~30× slower inside a while loop than at the top level of a program
      (measured, benchmarks/RESULTS.md, Federated), which makes "scan" the slower mode
      on CPU. Per-step dispatch costs well under 1 % of a step.
    mesh: a 1-D ``client_mesh``; the client axis (C divisible by its size) is split
      across its devices, each running the vmapped program on its own clients.
    hflip, au_norm: the recipe's augmentation and AU-loss normalisation
      (``train_state.make_train_step``), as in centralised training.
    au_pos_weight: weigh the positive term of the AU BCEs by each client's ``au_w``
      (``losses.au_pos_weights`` of its own training rows), as ``train.au_pos_weight``
      = balanced does in centralised training.
    eval_flip: every evaluated output is the mean of the logits on the sample and on
      its mirror image (``training.flip_averaging``), as ``train.eval_flip``.
    Build it once per run: each distinct (C, T, B) shape compiles once ("step": (C, B)).
    """
    C, R = P("clients"), P()
    if mode not in MODES:
        raise ValueError(f"unknown local-training mode {mode!r}; choose from {', '.join(MODES)}")
    step = make_train_step(model, tx, alpha=alpha, extra_penalty=_prox_penalty, hflip=hflip, au_norm=au_norm)

    def batch_of(data, i, m, class_w, au_w):
        batch = gather_batch(data, i, m)
        batch["ce_weight"] = jnp.take(class_w, batch["label"])
        if au_pos_weight:
            batch["au_pos_weight"] = au_w
        return batch

    eval_step = make_eval_step(model, flip_tta=eval_flip)
    # Jitted once per run: un-jitted model.init costs seconds per call on a busy CPU.
    init_states = init_program(jax.vmap(lambda key, d: create_train_state(model, tx, key, prior_d=d)))

    def client_train(state, anchor, mu, data, idx, mask, betas, lrs, class_w, au_w):
        def body(st, xs):
            i, m, beta, lr = xs
            st, metrics = step(st, batch_of(data, i, m, class_w, au_w), beta, (anchor, mu), lr_scale=lr)
            return st, (metrics["loss"], jnp.sum(m) > 0)

        state, (loss, live) = jax.lax.scan(body, state, (idx, mask, betas, lrs))
        live = live.astype(jnp.float32)
        mean_loss = jnp.sum(loss * live) / jnp.maximum(jnp.sum(live), 1.0)
        return state, mean_loss, loss

    vtrain = _over_clients(
        jax.vmap(client_train, in_axes=(0, 0, None, None, 0, 0, None, 0, 0, 0)),
        mesh,
        (C, C, R, R, C, C, R, C, C, C),
        (C, C, C),
    )

    def defaults(idx, lrs, class_w, au_w):
        c, t = idx.shape[:2]
        lrs = jnp.ones((c, t), jnp.float32) if lrs is None else jnp.asarray(lrs, jnp.float32)
        class_w = (
            jnp.ones((c, model.num_classes), jnp.float32) if class_w is None else jnp.asarray(class_w, jnp.float32)
        )
        au_w = jnp.ones((c, 12), jnp.float32) if au_w is None else jnp.asarray(au_w, jnp.float32)
        return lrs, class_w, au_w

    def train(states, anchors, mu, data, idx, mask, betas, lrs=None, class_w=None, au_w=None):
        lrs, class_w, au_w = defaults(idx, lrs, class_w, au_w)
        return vtrain(states, anchors, jnp.asarray(mu, jnp.float32), data, idx, mask, betas, lrs, class_w, au_w)

    def scanned_eval(keys: tuple[str, ...]):
        """evaluate(states, data, idx, mask, beta) -> the eval step's ``keys`` (C, S, B, ...)."""

        def client(state, data, idx, mask, beta):
            def body(_, xs):
                out = eval_step(state, gather_batch(data, *xs), beta)
                return None, tuple(out[k] for k in keys)

            return jax.lax.scan(body, None, (idx, mask))[1]

        v = _over_clients(jax.vmap(client, in_axes=(0, None, 0, 0, None)), mesh, (C, R, C, C, R), (C,) * len(keys))
        return lambda states, data, idx, mask, beta=0.0: v(states, data, idx, mask, jnp.asarray(beta, jnp.float32))

    evaluate = scanned_eval(("pred", "emotion_prob"))
    evaluate_au = scanned_eval(("au_prob_gat", "au_prob_afe"))
    evaluate_au_fn = jax.jit(evaluate_au) if getattr(model, "use_au_branch", False) else None

    if mode == "scan":
        jitted = jax.jit(train, donate_argnums=(0,))
        return LocalTrainer(
            train=lambda st, an, mu, data, idx, mask, betas, lrs=None, class_w=None, au_w=None: jitted(
                st, an, mu, data, idx, mask, betas, *defaults(idx, lrs, class_w, au_w)
            ),
            evaluate=jax.jit(evaluate),
            init_states=init_states,
            mesh=mesh,
            evaluate_au=evaluate_au_fn,
        )

    def one_step(states, anchors, mu, data, idx, mask, beta, lr, class_w, au_w):
        def client_step(st, anchor, i, m, lr_i, cw, aw):
            st, metrics = step(st, batch_of(data, i, m, cw, aw), beta, (anchor, mu), lr_scale=lr_i)
            return st, metrics["loss"]

        return jax.vmap(client_step)(states, anchors, idx, mask, lr, class_w, au_w)

    one_step = jax.jit(_over_clients(one_step, mesh, (C, C, R, R, C, C, R, C, C, C), (C, C)), donate_argnums=(0,))

    def train_by_step(states, anchors, mu, data, idx, mask, betas, lrs=None, class_w=None, au_w=None):
        lrs, class_w, au_w = defaults(idx, lrs, class_w, au_w)
        idx, mask = jnp.asarray(idx), jnp.asarray(mask)
        mu = jnp.asarray(mu, jnp.float32)
        betas = np.asarray(betas, np.float32)
        losses = []
        for t in range(idx.shape[1]):
            states, loss = one_step(
                states, anchors, mu, data, idx[:, t], mask[:, t], betas[t], lrs[:, t], class_w, au_w
            )
            losses.append(loss)
        loss = jnp.stack(losses, axis=1)  # (C, T)
        live = (jnp.sum(mask, axis=-1) > 0).astype(jnp.float32)
        mean_loss = jnp.sum(loss * live, 1) / jnp.maximum(jnp.sum(live, 1), 1.0)
        return states, mean_loss, loss

    return LocalTrainer(
        train=train_by_step, evaluate=jax.jit(evaluate), init_states=init_states, mesh=mesh, evaluate_au=evaluate_au_fn
    )


# ------------------------------------------------------------------ device placement
def client_mesh(num_devices: int | None = None) -> Mesh:
    """1-D mesh named ``clients`` over the first ``num_devices`` devices."""
    return row_mesh(num_devices, axis_name="clients")


# Place the client axis across the mesh (C must divide evenly) / copy the shared
# dataset to every device: the row helpers of ``training.sharding``.
shard_clients = shard_rows
