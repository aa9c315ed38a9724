"""A saved model directory (a fold's model, a stage-1 model, ``final_model``) back in
memory, and its jitted eval apply.

A model directory is an Orbax checkpoint plus ``metadata.json`` (classes, AU branch,
model options and the run's resolved config). Everything the network needs to be
rebuilt is in that metadata, so a model trained long ago is rebuilt as it was trained
(options added later take the value older models were trained with).
"""

from __future__ import annotations

from pathlib import Path

import jax

from fedpsyau_jax.network.model import FedPsyAU, init_variables, model_options
from fedpsyau_jax.network.priors import beta_schedule
from fedpsyau_jax.training.checkpoints import CheckpointError, read_metadata, restore_checkpoint

FINAL_MODEL = "final_model"  # the all-data model a run exports for predict


def model_from_meta(meta: dict) -> FedPsyAU:
    """The network an exported model was trained as. Models exported before the
    ``group_tokens`` option used the reference code's group assignment; before the AU
    node / dropout options, the paper's (L2 nodes, dropout 0.5)."""
    return FedPsyAU(
        num_classes=int(meta["num_classes"]),
        use_au_branch=bool(meta["use_au_branch"]),
        **model_options(meta, {"group_tokens": "reference"}),
    )


def abstract_variables(model: FedPsyAU) -> dict:
    """Shapes and dtypes of ``model``'s variables (params, batch_stats, priors): the
    restore target of its checkpoints; nothing is computed."""
    v = jax.eval_shape(lambda k: init_variables(model, k), jax.random.PRNGKey(0))
    return {"params": v["params"], "batch_stats": v.get("batch_stats", {}), "priors": v["priors"]}


def read_model(path) -> tuple[FedPsyAU, dict, dict]:
    """(model, variables, metadata) of the model directory ``path`` (metadata.json +
    state/). A directory whose metadata lacks the network's description is a
    ``CheckpointError`` naming it."""
    path = Path(path)
    meta = read_metadata(path.parent, path.name)
    for key in ("num_classes", "class_names", "use_au_branch"):
        if key not in meta:
            raise CheckpointError(f"{path}: metadata lacks {key!r} (not an exported model)")
    model = model_from_meta(meta)
    v, meta = restore_checkpoint(path.parent, path.name, abstract_variables(model))
    return model, v, meta


def pretrained_variables(path) -> tuple[dict, dict]:
    """params / batch_stats of the model directory at ``path`` (``model.init_from``:
    an AU pre-training run's model)."""
    path = Path(path)
    meta = read_metadata(path.parent, path.name)
    model = model_from_meta(meta)
    v, _ = restore_checkpoint(path.parent, path.name, abstract_variables(model))
    return v["params"], v["batch_stats"]


def final_beta(meta: dict) -> float:
    """The prior weight β of the last training epoch (what the exported model ends with)."""
    train = meta.get("config", {}).get("train", {})
    epochs = int(train.get("epochs", 1))
    return float(beta_schedule(train.get("beta_schedule", "reference"), epochs, float(train.get("beta0", 0.3)))[-1])


_APPLY: dict = {}


def apply_fn(model: FedPsyAU, beta: float, flip_tta: bool = False):
    """The jitted eval apply ``f(variables, batch) -> (emotion logits (B, C), AU logits
    of head B (B, 12) or None, of head A (B, 12) or None)`` of (model, β), cached so
    repeated calls (one per video interval) compile once. ``flip_tta``: every output is
    the mean of the logits on the batch and on its mirror image
    (``training.flip_averaging``)."""
    key = (model, beta, flip_tta)
    if key not in _APPLY:
        from fedpsyau_jax.training.flip_averaging import flip_averaged

        apply = lambda var, b: model.apply(var, b, beta, train=False)
        _APPLY[key] = jax.jit(flip_averaged(apply) if flip_tta else apply)
    return _APPLY[key]


def write_random_model(dest, class_names: list[str], seed: int = 0, **options) -> Path:
    """``<dest>/final_model``: an exported model of ``FedPsyAU`` (``options``: its model
    options; the AU branch on) with small random weights and BatchNorm at identity — for
    timing the inference path and for tests, never for predictions."""
    import numpy as np

    from fedpsyau_jax.training.checkpoints import save_checkpoint

    model = FedPsyAU(num_classes=len(class_names), use_au_branch=True, **options)
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = str(path[-1])
        if "var" in name:
            return np.ones(leaf.shape, leaf.dtype)
        if "mean" in name:
            return np.zeros(leaf.shape, leaf.dtype)
        return (0.05 * rng.standard_normal(leaf.shape)).astype(leaf.dtype)

    v = jax.tree_util.tree_map_with_path(fill, abstract_variables(model))
    meta = {
        "num_classes": len(class_names),
        "class_names": list(class_names),
        "use_au_branch": True,
        **options,
        "config": {"train": {"epochs": 1}},
    }
    save_checkpoint(Path(dest), FINAL_MODEL, v, meta)
    return Path(dest) / FINAL_MODEL
