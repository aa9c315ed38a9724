"""Train and evaluate many folds at once: vmapped fold states, one compiled epoch.

``FoldPrograms`` compiles three functions ONCE per run, each vmapped over a leading
fold axis K and taking the whole dataset (on device, shared by all folds; batches are
gathered inside the compiled step):

    init(keys (K,2), D (K,12,12))                          -> stacked TrainState
    train_step(states, data, idx (K,B), mask (K,B), beta (K,)) -> states, metrics (K,)
    eval_step(states, data, idx (K,B), mask (K,B), beta (K,))  -> outputs (K,B,...)

``train_epoch`` / ``evaluate`` loop over the padded steps of an epoch plan on the host
(see the note at ``train_epoch`` for why not ``lax.scan``); steps whose example mask is
all zero are no-ops (``train_state.make_train_step``), so folds of unequal size share
one program. β is an argument (the schedule is restarted for every fold and never
recompiles), and so is each fold's D (inside the state's ``priors``).

Reproducibility: everything random about fold f depends on (seed, f) only —
initialisation key ``fold_key(seed, f)``, the dropout key of epoch e
``epoch_key(seed, f, e)`` (re-seeded at the start of every epoch so that padded
no-op steps of a longer fold in the same chunk cannot shift it), and the batch plan
of epoch e from ``np.random.default_rng([seed, f, e])``. Hence running folds one by
one (``fold_chunk=1``) or many at a time gives the same per-fold results, and a run
resumed from a checkpoint continues exactly where it stopped.

``run_folds`` drives chunks of folds with per-epoch Orbax checkpoints of the chunk
(resume) and writes each finished fold's model and test predictions atomically
(a finished fold is never recomputed).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
import shutil
import time
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from fedpsyau_jax.core.atomic_files import save_npz_atomic
from fedpsyau_jax.training.batching import epoch_plan, eval_plan, gather_batch, stack_plans
from fedpsyau_jax.training.checkpoints import (
    CheckpointError,
    latest_checkpoint,
    list_checkpoints,
    read_metadata,
    restore_checkpoint,
    save_checkpoint,
)
from fedpsyau_jax.network.model import FedPsyAU, init_program
from fedpsyau_jax.training.losses import au_pos_weights
from fedpsyau_jax.training.protocols import Fold
from fedpsyau_jax.training.run_logging import progress
from fedpsyau_jax.training.settings import TrainSettings
from fedpsyau_jax.training.sharding import over_rows, padded_width
from fedpsyau_jax.training.train_state import (
    TrainState,
    create_train_state,
    make_eval_step,
    make_optimizer,
    make_train_step,
)

# Top-level param modules of the AU branch (LFE, SSE, GSE/AFE, DPK-GAT, AU heads):
# the part that AU pre-training (paper §5.1) transfers into the MER model.
AU_BRANCH_PREFIXES = ("lfe", "sse", "afe_", "gat_", "au_head_")
PREDICTIONS_FILE = "predictions.npz"
MODEL_CHECKPOINT = "model"


def class_weights(labels: np.ndarray, train_idx: np.ndarray, num_classes: int) -> np.ndarray:
    """n / (C·n_c) over the classes present in the training labels (absent: 0)."""
    lab = np.asarray(labels)[np.asarray(train_idx, np.int64)]
    counts = np.bincount(lab, minlength=num_classes).astype(np.float64)
    present = counts > 0
    w = np.zeros(num_classes)
    w[present] = len(lab) / (present.sum() * counts[present])
    return w.astype(np.float32)


def fold_key(seed: int, fold_index: int) -> jax.Array:
    """Initialisation key of fold ``fold_index`` (raw uint32 key, shape (2,))."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), fold_index)


def epoch_key(seed: int, fold_index: int, epoch: int) -> jax.Array:
    """Dropout key stream of fold ``fold_index`` in epoch ``epoch`` (0-based)."""
    return jax.random.fold_in(jax.random.fold_in(fold_key(seed, fold_index), 1 << 20), epoch)


def fold_epoch_plan(s: TrainSettings, fold: Fold, labels: np.ndarray, epoch: int, num_steps: int | None = None):
    rng = np.random.default_rng([s.seed, s.rng_index(fold), epoch])
    return epoch_plan(rng, fold.train_idx, s.batch_size, labels, s.oversample, num_steps)


def steps_per_epoch(s: TrainSettings, folds: list[Fold], labels: np.ndarray) -> int:
    """Common number of train steps S for all folds (the largest fold's plan)."""
    return max(fold_epoch_plan(s, f, labels, 0)[0].shape[0] for f in folds)


def eval_steps(s: TrainSettings, folds: list[Fold]) -> int:
    return max(max(1, -(-len(f.test_idx) // s.eval_batch_size)) for f in folds)


class FoldPrograms:
    """The jitted, fold-vmapped init / train step / eval step of one run (see module doc)."""

    def __init__(self, model: FedPsyAU, s: TrainSettings, mesh=None):
        """mesh: a 1-D ``sharding.row_mesh``; each device then trains its block of the
        chunk's folds (chunks are padded to a multiple of the device count)."""
        self.model, self.settings, self.mesh = model, s, mesh
        # lr 1 here: each step's learning rate is an argument of the compiled step.
        self.tx = make_optimizer(1.0, s.weight_decay, s.decay_kernels_only)
        train_step = make_train_step(model, self.tx, alpha=tuple(s.alpha), hflip=s.hflip, au_norm=s.au_norm)
        eval_step = make_eval_step(model, flip_tta=s.eval_flip)
        tx = self.tx

        def init_one(key, prior_d):
            return create_train_state(model, tx, key, prior_d=prior_d)

        def step_one(state, data, idx, mask, beta, lr, class_w, au_w, au_rows):
            batch = gather_batch(data, idx, mask)
            # rows whose AU labels this fold must not learn from (calibration subjects)
            batch["au_mask"] = batch["au_mask"] * jnp.take(au_rows, idx)[:, None]
            batch["ce_weight"] = jnp.take(class_w, batch["label"])
            if s.au_pos_weight != "none":
                batch["au_pos_weight"] = au_w
            state, metrics = train_step(state, batch, beta, lr_scale=lr)
            return state, metrics

        def eval_one(state, data, idx, mask, beta):
            return eval_step(state, gather_batch(data, idx, mask), beta)

        rows, rep = (P(mesh.axis_names[0]), P()) if mesh is not None else (None, None)
        self.init = init_program(over_rows(jax.vmap(init_one), mesh, (rows, rows), rows))
        # Donate the fold states: each step replaces them, so XLA may update in place.
        self.train_step = jax.jit(
            over_rows(
                jax.vmap(step_one, in_axes=(0, None, 0, 0, 0, 0, 0, 0, 0)),
                mesh,
                (rows, rep, rows, rows, rows, rows, rows, rows, rows),
                (rows, rows),
            ),
            donate_argnums=(0,),
        )
        self.eval_step = jax.jit(
            over_rows(jax.vmap(eval_one, in_axes=(0, None, 0, 0, 0)), mesh, (rows, rep, rows, rows, rows), rows)
        )

    # The epoch is a host loop over ONE compiled step rather than a lax.scan: measured on
    # XLA:CPU (jax 0.10.2, this model), a scanned step ran ~15x slower per step than the
    # same step jitted on its own (8 s vs 0.47 s at batch 32; benchmarks/RESULTS.md).
    def train_epoch(
        self, states: TrainState, data, idx, mask, beta, keys, lrs=None, class_w=None, au_w=None, au_rows=None
    ):
        """One epoch of every stacked fold -> (states, metrics {name: (K, S)}, counts (K, S)).

        idx, mask: host arrays (K, S, B); steps where every fold's mask is zero (the
        padding at the end of shorter folds) are skipped — they would be no-ops.
        lrs: (K, S) learning rate of each step (default: the constant peak rate);
        class_w: (K, C) CE class weights (default: ones).
        au_w: (K, 12) AU positive weights (used when ``au_pos_weight`` is not "none").
        au_rows: (K, N) 1 where a dataset row's AU labels may train the fold, 0 where
          they are held out (default: all ones).
        """
        idx, mask = np.asarray(idx), np.asarray(mask)
        k = idx.shape[0]
        if lrs is None:
            lrs = np.full(idx.shape[:2], self.settings.learning_rate, np.float32)
        if class_w is None:
            class_w = np.ones((k, self.model.num_classes), np.float32)
        class_w = jnp.asarray(class_w, jnp.float32)
        au_w = jnp.ones((k, 12), jnp.float32) if au_w is None else jnp.asarray(au_w, jnp.float32)
        n_rows = data["au_mask"].shape[0]
        au_rows = jnp.ones((k, n_rows), jnp.float32) if au_rows is None else jnp.asarray(au_rows, jnp.float32)
        states = states.replace(key=jnp.asarray(keys))
        beta = jnp.asarray(beta, jnp.float32)
        per_step = []
        for t in range(idx.shape[1]):
            if not mask[:, t].any():
                per_step.append(None)
                continue
            states, m = self.train_step(
                states,
                data,
                jnp.asarray(idx[:, t]),
                jnp.asarray(mask[:, t]),
                beta,
                jnp.asarray(lrs[:, t], jnp.float32),
                class_w,
                au_w,
                au_rows,
            )
            per_step.append(m)
        live = [m for m in per_step if m is not None]
        host = jax.device_get(live)
        names = list(host[0]) if host else []
        metrics = {n: np.zeros(idx.shape[:2], np.float32) for n in names}
        j = 0
        for t, m in enumerate(per_step):
            if m is None:
                continue
            for n in names:
                metrics[n][:, t] = host[j][n]
            j += 1
        return states, metrics, mask.sum(axis=2)

    def evaluate(self, states: TrainState, data, idx, mask, beta) -> dict[str, np.ndarray]:
        """Eval outputs of every stacked fold for host plans (K, T, B) -> {name: (K, T, B, ...)}."""
        idx, mask = np.asarray(idx), np.asarray(mask)
        beta = jnp.asarray(beta, jnp.float32)
        outs = [
            self.eval_step(states, data, jnp.asarray(idx[:, t]), jnp.asarray(mask[:, t]), beta)
            for t in range(idx.shape[1])
        ]
        outs = jax.device_get(outs)
        return {n: np.stack([o[n] for o in outs], axis=1) for n in outs[0]}

    def with_settings(self, s: TrainSettings) -> "FoldPrograms":
        """The same compiled programs with other non-structural settings (epochs, seed, ...)."""
        other = copy.copy(self)
        other.settings = s
        return other

    def abstract_states(self, k: int) -> TrainState:
        """Shapes/dtypes of ``k`` stacked states (restore target, no computation)."""
        keys = jax.ShapeDtypeStruct((k, 2), jnp.uint32)
        d = jax.ShapeDtypeStruct((k, 12, 12), jnp.float32)
        return jax.eval_shape(self.init, keys, d)


_PROGRAMS: dict[tuple, FoldPrograms] = {}


def get_programs(model: FedPsyAU, s: TrainSettings, mesh=None) -> FoldPrograms:
    """``FoldPrograms`` memoised on what shapes the compiled code (model kind, optimiser,
    loss weights, devices), so repeated runs in one process (tests, evaluate after
    train) reuse the jitted functions instead of compiling them again."""
    key = (
        model.architecture,
        model.num_classes,
        model.use_au_branch,
        model.group_tokens,
        model.roi_source,
        model.au_node_norm,
        model.gat_dropout,
        model.au_head_dropout,
        s.au_pos_weight,
        s.weight_decay,
        s.decay_kernels_only,
        s.hflip,
        s.au_norm,
        tuple(s.alpha),
        None if mesh is None else tuple(d.id for d in mesh.devices.flat),
    )
    if key not in _PROGRAMS:
        _PROGRAMS[key] = FoldPrograms(model, s, mesh)
    return _PROGRAMS[key].with_settings(s)


def model_variables(states: TrainState, k: int | None = None) -> dict:
    """{"params", "batch_stats", "priors"} of fold ``k`` of stacked states (or unstacked)."""
    v = {"params": states.params, "batch_stats": states.batch_stats, "priors": states.priors}
    return v if k is None else jax.tree.map(lambda x: x[k], v)


def load_pretrained(
    states: TrainState,
    pretrained_params: dict,
    pretrained_stats: dict,
    prefixes=AU_BRANCH_PREFIXES,
    stacked: bool = False,
) -> TrainState:
    """Replace the AU-branch modules of every stacked fold state by pre-trained ones.

    Only top-level modules whose name starts with one of ``prefixes`` are copied; a
    shape mismatch is an error naming the module. ``stacked``: the given trees already
    carry the fold axis (one pre-trained model per fold), else one model for all.
    """
    params, stats = dict(states.params), dict(states.batch_stats)
    copied = []
    for tgt, src in ((params, pretrained_params), (stats, pretrained_stats)):
        for name, sub in src.items():
            if not name.startswith(tuple(prefixes)) or name not in tgt:
                continue
            k = jax.tree.leaves(tgt[name])[0].shape[0]
            want = jax.tree.map(lambda x: x.shape if stacked else x.shape[1:], tgt[name])
            have = jax.tree.map(lambda x: np.shape(x), sub)
            if jax.tree.structure(want) != jax.tree.structure(have) or jax.tree.leaves(want) != jax.tree.leaves(have):
                raise ValueError(f"pre-trained module {name!r} does not match the model's shapes")
            tgt[name] = jax.tree.map(
                lambda x: jnp.asarray(x) if stacked else jnp.broadcast_to(jnp.asarray(x), (k, *np.shape(x))), sub
            )
            copied.append(name)
    if not copied:
        raise ValueError(f"no pre-trained module matches the prefixes {prefixes}")
    return states.replace(params=params, batch_stats=stats)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def fold_dir(workdir: Path, fold: Fold) -> Path:
    return Path(workdir) / "folds" / f"{fold.index:03d}_{_safe(fold.name)}"


def chunk_folds(folds: list[Fold], chunk: int) -> list[list[Fold]]:
    """Split into near-equal consecutive chunks of at most ``chunk`` folds."""
    if not folds:
        return []
    n = -(-len(folds) // max(1, chunk))
    size = -(-len(folds) // n)
    return [folds[i : i + size] for i in range(0, len(folds), size)]


# Options added after runs had been saved, with the default that reproduces the older
# behaviour: at that default they are left out of the fingerprint (at any depth), so
# those runs keep theirs.
OPTIONS_ADDED_LATER = {
    "fold_rng": "per_fold",
    "subject_folds": 0,
    "part_balance": "none",
    "au_calibration": "thresholds",
    "landmark_frame": "apex",  # data.kwargs of the MEGC2019 composite
    "eval_flip": False,
    "name": "fedpsyau",  # model.name (the baselines came later); no other "name" takes this value
    "architecture": "fedpsyau",
}


def _without_later_defaults(x):
    if isinstance(x, dict):
        return {
            k: _without_later_defaults(v)
            for k, v in x.items()
            if not (k in OPTIONS_ADDED_LATER and v == OPTIONS_ADDED_LATER[k])
        }
    return x


def settings_fingerprint(s: TrainSettings, extra: dict) -> str:
    """Hash of what a run's results depend on, checked before resuming a chunk.

    ``checkpoint_every`` only says how often to save (``runtime.*`` may change between
    a start and its resume): it is hashed at its default, so the fingerprints of runs
    saved every epoch stay what they were."""
    s = dataclasses.replace(s, checkpoint_every=1)
    blob = json.dumps(
        _without_later_defaults({"settings": dataclasses.asdict(s), **extra}), sort_keys=True, default=str
    )
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def load_fold_predictions(path: Path) -> dict[str, np.ndarray] | None:
    """A finished fold's stored predictions, or None if absent/unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError):
        return None


@dataclasses.dataclass
class RunHooks:
    """Optional callbacks of ``run_folds`` (logging and test instrumentation)."""

    on_epoch: Callable[..., None] | None = None
    on_fold_done: Callable[..., None] | None = None
    after_chunk: Callable[[int], None] | None = None  # tests raise here to simulate a kill


def run_folds(
    programs: FoldPrograms,
    data: dict,
    labels: np.ndarray,
    folds: list[Fold],
    priors: dict[int, np.ndarray],
    workdir: Path,
    model_meta: dict,
    fingerprint: str,
    pretrained=None,
    hooks: RunHooks | None = None,
    show_progress: bool = True,
    au_thresholds: dict | None = None,
    au_holdout: dict[int, np.ndarray] | None = None,
) -> dict[int, dict[str, np.ndarray]]:
    """Train all ``folds`` (skipping finished ones), return {fold index: predictions}.

    data: device dataset (``batching.device_data``); labels: host labels (N,) for
    oversampling. priors: fold index -> D (12, 12). model_meta: stored with every
    exported model (num_classes, class_names, use_au_branch, config ...).
    Predictions per fold: test_idx (n,), prob (n, C), pred (n,), and for the full model
    au_prob_gat / au_prob_afe (n, 12).
    pretrained: (params, batch_stats) whose AU-branch modules initialise every fold, or a
      function fold -> (params, batch_stats) (one pre-trained model per fold), or None.
    au_thresholds: {fold index: {"gat": (12,), "afe": (12,)}} per-AU decision thresholds
      (chosen on inner validation subjects); the predictions then also hold
      au_pred_gat / au_pred_afe (n, 12) {0,1} and au_threshold_gat / au_threshold_afe.
    au_holdout: {fold index: rows (m,)} training rows whose AU labels the fold must not
      learn from; the fold's final AU heads are then calibrated on them
      (``au_calibration``): au_prob_* become the calibrated probabilities, au_pred_* =
      au_prob_* >= 0.5, and the predictions also hold au_prob_uncal_* (n, 12), au_platt_*
      (12, 2), au_holdout_idx (m,) and the raw head probabilities on those rows,
      au_holdout_prob_* (m, 12); the maps are also stored in the model's metadata.
      Replaces ``au_thresholds`` for those folds.
    """
    s = programs.settings
    hooks = hooks or RunHooks()
    workdir = Path(workdir)
    num_steps = steps_per_epoch(s, folds, labels)
    results, todo = _finished_folds(workdir, folds)
    chunks = chunk_folds(todo, s.fold_chunk)
    # Sharded over devices: every device gets the same number of rows (padding rows
    # are no-op copies, see below), so one program serves every chunk.
    width = padded_width(max((len(c) for c in chunks), default=1), programs.mesh)
    bar = progress(len(todo) * s.epochs, "fold-epochs", show_progress)
    for ci, chunk in enumerate(chunks):
        # Pad to the common width with copies of the last fold whose masks are all
        # zero: their steps are no-ops and their outputs are dropped; one program
        # serves every chunk (no recompilation for a smaller last chunk).
        members = chunk + [chunk[-1]] * (width - len(chunk))
        ckdir = workdir / "checkpoints" / f"chunk_{chunk[0].index:03d}-{chunk[-1].index:03d}_w{width}"
        start_epoch, states = _resume_chunk(programs, ckdir, [f.index for f in members], fingerprint, width)
        bar.update(len(chunk) * start_epoch)
        au_rows = _au_rows(data, members, au_holdout)
        if states is None:
            states = _init_chunk(programs, members, priors, pretrained)
        states = _train_chunk(
            programs,
            states,
            data,
            labels,
            chunk,
            members,
            au_rows,
            start_epoch,
            num_steps,
            ckdir,
            fingerprint,
            hooks,
            bar,
        )
        for f, pred in _finish_chunk(
            programs, states, data, folds, chunk, members, workdir, model_meta, au_thresholds, au_holdout
        ):
            results[f.index] = pred
            if hooks.on_fold_done:
                hooks.on_fold_done(fold=f, predictions=pred)
        shutil.rmtree(ckdir, ignore_errors=True)
        if hooks.after_chunk:
            hooks.after_chunk(ci)
    bar.close()
    return results


def _finished_folds(workdir: Path, folds: list[Fold]) -> tuple[dict[int, dict[str, np.ndarray]], list[Fold]]:
    """({fold index: stored predictions} of the finished folds, the folds still to train)."""
    results: dict[int, dict[str, np.ndarray]] = {}
    todo = []
    for f in folds:
        pred = load_fold_predictions(fold_dir(workdir, f) / PREDICTIONS_FILE)
        if pred is not None:
            results[f.index] = pred
        else:
            todo.append(f)
    return results, todo


def _resume_chunk(programs: FoldPrograms, ckdir: Path, fold_ids: list[int], fingerprint: str, width: int):
    """(first epoch to train, stacked states or None) of a chunk: from its latest
    checkpoint when one exists, which must have been written by the same run."""
    name = latest_checkpoint(ckdir)
    if name is None:
        return 0, None
    meta = read_metadata(ckdir, name)
    if meta.get("folds") != fold_ids or meta.get("fingerprint") != fingerprint:
        raise CheckpointError(
            f"checkpoint {ckdir / name} was written by a different run (folds "
            f"{meta.get('folds')} / settings {meta.get('fingerprint')} vs {fold_ids} / "
            f"{fingerprint}); use a fresh --workdir or delete {ckdir}"
        )
    states, meta = restore_checkpoint(ckdir, name, programs.abstract_states(width))
    return int(meta["epoch"]) + 1, jax.tree.map(jnp.asarray, states)


def _au_rows(data: dict, members: list[Fold], au_holdout: dict[int, np.ndarray] | None) -> np.ndarray:
    """(K, N) 1 where a chunk member may learn from a row's AU labels, 0 on its
    held-out rows (``au_holdout``)."""
    au_rows = np.ones((len(members), int(data["au_mask"].shape[0])), np.float32)
    for k, f in enumerate(members):
        if au_holdout is not None and f.index in au_holdout:
            au_rows[k, np.asarray(au_holdout[f.index], np.int64)] = 0.0
    return au_rows


def _loss_weights(s: TrainSettings, data: dict, labels: np.ndarray, members: list[Fold], au_rows, num_classes: int):
    """(class weights (K, C), AU positive weights (K, 12)) of every chunk member, from
    its own training rows (ones where the settings ask for no weighting)."""
    cweights = np.stack(
        [
            class_weights(labels, f.train_idx, num_classes)
            if s.class_balance == "weighted_ce"
            else np.ones(num_classes, np.float32)
            for f in members
        ]
    )
    au_weights = np.stack(
        [
            np.asarray(
                au_pos_weights(data["au"][f.train_idx], data["au_mask"][f.train_idx] * au_rows[k, f.train_idx][:, None])
            )
            if s.au_pos_weight == "balanced"
            else np.ones(12, np.float32)
            for k, f in enumerate(members)
        ]
    )
    return cweights, au_weights


def _init_chunk(programs: FoldPrograms, members: list[Fold], priors: dict[int, np.ndarray], pretrained):
    """Fresh stacked states of a chunk: each fold's own initialisation and prior D, the
    AU branch then taken from ``pretrained`` where given (one model, or one per fold)."""
    s = programs.settings
    keys = jnp.stack([fold_key(s.seed, s.rng_index(f)) for f in members])
    ds = jnp.asarray(np.stack([priors[f.index] for f in members]), jnp.float32)
    states = programs.init(keys, ds)
    if callable(pretrained):
        per = [pretrained(f) for f in members]
        stack = lambda trees: jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)
        states = load_pretrained(states, stack([p for p, _ in per]), stack([b for _, b in per]), stacked=True)
    elif pretrained is not None:
        states = load_pretrained(states, *pretrained)
    return states


def _train_chunk(
    programs, states, data, labels, chunk, members, au_rows, start_epoch, num_steps, ckdir, fingerprint, hooks, bar
):
    """The chunk's epochs from ``start_epoch`` to the fixed last one: each epoch's plan,
    one compiled pass, the user's hook, and a rotating checkpoint."""
    s = programs.settings
    real, width = len(chunk), len(members)
    live = np.array([1.0] * real + [0.0] * (width - real), np.float32)
    betas = s.betas()
    fold_ids = [f.index for f in members]
    cweights, au_weights = _loss_weights(s, data, labels, members, au_rows, programs.model.num_classes)
    for epoch in range(start_epoch, s.epochs):
        t0 = time.perf_counter()
        plans = [fold_epoch_plan(s, f, labels, epoch, num_steps) for f in members]
        idx, mask = stack_plans(plans)
        mask = mask * live[:, None, None]
        beta = np.full((width,), betas[epoch], np.float32)  # restarted for every fold
        ekeys = jnp.stack([epoch_key(s.seed, s.rng_index(f), epoch) for f in members])
        lrs = s.learning_rates(epoch, mask.sum(axis=2) > 0)
        states, metrics, counts = programs.train_epoch(
            states, data, idx, mask, beta, ekeys, lrs, cweights, au_weights, au_rows
        )
        n = np.maximum(counts.sum(axis=1), 1.0)
        means = {
            k: (np.asarray(v) * (counts > 0)).sum(axis=1) / np.maximum((counts > 0).sum(axis=1), 1)
            for k, v in metrics.items()
        }
        dt = time.perf_counter() - t0
        if hooks.on_epoch:
            hooks.on_epoch(
                folds=chunk,
                epoch=epoch,
                beta=float(betas[epoch]),
                metrics={k: v[:real] for k, v in means.items()},
                examples=n[:real],
                seconds=dt,
            )
        if s.checkpoint_every and (epoch + 1) % s.checkpoint_every == 0 and epoch + 1 < s.epochs:
            save_checkpoint(
                ckdir, f"epoch_{epoch:03d}", states, {"folds": fold_ids, "epoch": epoch, "fingerprint": fingerprint}
            )
            for old in list_checkpoints(ckdir)[:-1]:
                shutil.rmtree(ckdir / old, ignore_errors=True)
        bar.update(real)
    return states


def _finish_chunk(programs, states, data, folds, chunk, members, workdir, model_meta, au_thresholds, au_holdout):
    """After the fixed final epoch: evaluate each fold's test subjects (never earlier),
    calibrate or threshold its AU heads, and save its model, then its predictions
    (their presence marks the fold finished). Yields (fold, predictions)."""
    from fedpsyau_jax.training.au_calibration import calibrate_predictions, fit_heads_on_holdout

    s = programs.settings
    width = len(members)
    eplans = [eval_plan(f.test_idx, s.eval_batch_size, eval_steps(s, folds)) for f in members]
    eidx, emask = stack_plans(eplans)
    last_beta = np.full((width,), s.betas()[-1], np.float32)
    if any(len(f.test_idx) for f in chunk):
        out = programs.evaluate(states, data, eidx, emask, last_beta)
    else:  # nothing to test (e.g. the all-data model): skip (and never compile) evaluation
        out = {
            "emotion_prob": np.zeros((width, 0, 1, model_meta["num_classes"]), np.float32),
            "pred": np.zeros((width, 0, 1), np.int32),
        }
    held = [np.asarray(au_holdout.get(f.index, []), np.int64) if au_holdout else np.zeros(0, np.int64) for f in members]
    platt: dict[int, dict[str, np.ndarray]] = {}
    held_prob: dict[int, dict[str, np.ndarray]] = {}
    if programs.model.use_au_branch and any(len(h) for h in held):
        platt, held_prob = fit_heads_on_holdout(
            programs.evaluate, states, data, held, len(chunk), s.eval_batch_size, last_beta
        )
    for k, f in enumerate(chunk):
        pred = _fold_predictions(out, k, f, au_thresholds)
        if k in platt:
            calibrate_predictions(pred, platt[k], held[k], held_prob[k])
        fd = fold_dir(workdir, f)
        save_checkpoint(
            fd,
            MODEL_CHECKPOINT,
            model_variables(states, k),
            {
                **model_meta,
                "fold": f.name,
                "fold_index": f.index,
                "test_subjects": list(f.test_subjects),
                "epochs": s.epochs,
                **(
                    {"au_calibration": {h: np.asarray(ab).tolist() for h, ab in platt[k].items()}} if k in platt else {}
                ),
            },
        )
        # predictions last: their presence marks the fold as finished
        save_npz_atomic(fd / PREDICTIONS_FILE, pred)
        yield f, pred


def _fold_predictions(out: dict, k: int, f: Fold, au_thresholds: dict | None) -> dict[str, np.ndarray]:
    """Chunk member ``k``'s test outputs (padding dropped), with its AU decisions at
    its inner-validation thresholds where the run has them."""
    n_test = len(f.test_idx)
    pred = {"test_idx": np.asarray(f.test_idx, np.int64)}
    for key, arr in out.items():
        flat = np.asarray(arr[k]).reshape(-1, *np.shape(arr[k])[2:])
        pred[{"emotion_prob": "prob"}.get(key, key)] = flat[:n_test]
    if au_thresholds is not None and "au_prob_gat" in pred and f.index in au_thresholds:
        for head, thr in au_thresholds[f.index].items():
            pred[f"au_threshold_{head}"] = np.asarray(thr, np.float32)
            pred[f"au_pred_{head}"] = (pred[f"au_prob_{head}"] >= thr).astype(np.int8)
    return pred
