"""The paper's FL variant with the AU branch frozen: any algorithm, minus the AU branch.

``freeze_au_branch(algorithm)`` -> the same algorithm on the emotion branch only: the
AU-branch parameters (``AU_BRANCH``: LFE, SSE, the four AFE groups, the three GATs and
both AU heads) are neither uploaded nor replaced by what the server sends, and
``frozen_optimizer(tx)`` gives them zero updates, so they stay what every client
started from (its common initialisation, or AU-pretrained weights loaded into it).
Their BatchNorm statistics still follow each client's data in train mode and are
averaged where the algorithm averages BN statistics (freezing is about parameters).
"""

from __future__ import annotations

import dataclasses

import jax
import optax

from fedpsyau_jax.federated.algorithms.base import Algorithm, ServerMessage

AU_BRANCH: tuple[str, ...] = (
    "lfe",
    "sse",
    "afe_G1",
    "afe_G2",
    "afe_G3",
    "afe_G4",
    "gat_up",
    "gat_low",
    "gat_glob",
    "au_head_afe",
    "au_head_gat",
)


def is_au_branch(path) -> bool:
    first = path[0] if path else None
    return getattr(first, "key", getattr(first, "name", None)) in AU_BRANCH


def frozen_optimizer(tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """``tx`` on the emotion branch, zero updates (and no optimiser state) on the AU branch."""

    def labels(params):
        return jax.tree_util.tree_map_with_path(lambda p, _: "frozen" if is_au_branch(p) else "train", params)

    return optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)


def _without_frozen(params):
    return jax.tree_util.tree_map_with_path(lambda p, x: None if is_au_branch(p) else x, params)


def _with_own_frozen(own, new):
    """``new`` (None on frozen leaves, or None altogether) completed with ``own``'s leaves."""
    if new is None:
        return None
    flat_new = dict(jax.tree_util.tree_flatten_with_path(new, is_leaf=lambda x: x is None)[0])
    return jax.tree_util.tree_map_with_path(
        lambda p, x: x if is_au_branch(p) or flat_new.get(p) is None else flat_new[p], own
    )


def freeze_au_branch(algorithm: Algorithm) -> Algorithm:
    """``algorithm`` with the AU branch kept out of every upload and every update."""
    base_share, combine, combine_mean = (algorithm.shares_param, algorithm.combine, algorithm.combine_mean)
    if base_share is None:  # Local: nothing is shared anyway
        return dataclasses.replace(algorithm, name=algorithm.name + "_frozen_au")

    def shares(path) -> bool:
        return base_share(path) and not is_au_branch(path)

    def wrap(message: ServerMessage, own) -> ServerMessage:
        return ServerMessage(params=_with_own_frozen(own, message.params), batch_stats=message.batch_stats)

    def frozen_combine(params, num_samples, broadcast):
        return wrap(combine(_without_frozen(params), num_samples, broadcast), params)

    frozen_mean = None
    if combine_mean is not None:

        def frozen_mean(params, participate, mean, contribution, denom):
            return wrap(combine_mean(_without_frozen(params), participate, mean, contribution, denom), params)

    return dataclasses.replace(
        algorithm,
        name=algorithm.name + "_frozen_au",
        aggregate=None,
        shares_param=shares,
        combine=frozen_combine,
        combine_mean=frozen_mean,
        description=algorithm.description + "; AU branch frozen",
    )
