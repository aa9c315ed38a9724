"""Load an experiment config file (``get_config() -> ml_collections.ConfigDict``).

    cfg = load_config("configs/synthetic_demo.py", ["train.epochs=2", "data.kw.seed=3"])

Overrides are ``dotted.key=value`` strings. The value is converted to the type of the
existing entry (bool accepts true/false/1/0/yes/no; int/float parse; tuples and lists
parse as Python literals); a key that holds None takes the Python literal if the text
is one, else the string. An unknown key is an error that suggests the nearest existing
one (``config_flags`` semantics); only ``data.kwargs`` (loader keyword arguments)
accepts new keys. On the command line the same overrides are spelled
``--config.train.epochs=30`` (or ``--set train.epochs=30``).
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import importlib.util
from pathlib import Path
from typing import Iterable

import ml_collections

from fedpsyau_jax.core.errors import UserError

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


class ConfigError(UserError):
    """A config file or override is invalid (the message names the file or key)."""


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def convert_value(text: str, current, key: str = "?"):
    """``text`` converted to the type of ``current`` (see module docstring)."""
    if current is None:
        return _literal(text)
    if isinstance(current, bool):
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ConfigError(f"override {key}={text!r}: expected a boolean (true/false)")
    if isinstance(current, int):
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"override {key}={text!r}: expected an integer") from None
    if isinstance(current, float):
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"override {key}={text!r}: expected a number") from None
    if isinstance(current, str):
        return text
    if isinstance(current, (tuple, list)):
        value = _literal(text)
        if not isinstance(value, (tuple, list)):
            value = (value,)
        return type(current)(value)
    return _literal(text)


# Sections whose keys are free-form (passed on as keyword arguments): a new key there
# is a new argument, not a typo.
OPEN_SECTIONS = ("data.kwargs",)


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def _all_keys(node: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    out = []
    for k in node.keys():
        out.append(prefix + k)
        if isinstance(node[k], ml_collections.ConfigDict):
            out.extend(_all_keys(node[k], prefix + k + "."))
    return out


#: keys of the old federated config spelling -> their key in the one schema
RENAMED_KEYS = {
    "data.kw": "data.kwargs",
    "train.lr": "train.learning_rate",
    "train.prior": "fl.prior",
    "train.fallback_prior": "fl.fallback_prior",
    "train.mode": "fl.mode",
    "train.checkpoint_every": "runtime.checkpoint_every",
}


def _renamed(key: str) -> str | None:
    """The new spelling of ``key`` (or of the section it is in), if it was renamed."""
    for old, new in RENAMED_KEYS.items():
        if key == old or key.startswith(old + "."):
            return new + key[len(old) :]
    return None


def check_renamed_keys(cfg: ml_collections.ConfigDict, where: str) -> None:
    """A ``ConfigError`` naming the new key for the first old-spelling key in ``cfg``."""
    for old, new in RENAMED_KEYS.items():
        section, leaf = old.split(".")
        if section in cfg and isinstance(cfg[section], ml_collections.ConfigDict) and leaf in cfg[section]:
            raise ConfigError(f"{where}: {old} is now {new} (one spelling for every verb); rename it")


def apply_override(cfg: ml_collections.ConfigDict, override: str) -> None:
    """Apply one ``a.b.c=value`` override to ``cfg`` in place.

    Strict, like ml_collections' ``config_flags``: the key must exist (except under
    ``OPEN_SECTIONS``) and the value must convert to the entry's type; otherwise a
    ``ConfigError`` names the key and suggests the nearest existing one.
    """
    if "=" not in override:
        raise ConfigError(f"override {override!r}: must look like key.sub=value")
    key, text = override.split("=", 1)
    key = key.strip()
    if (new := _renamed(key)) is not None:
        raise ConfigError(f"override {key}: now {new} (one spelling for every verb)")
    parts = key.split(".")
    node = cfg
    for i, p in enumerate(parts[:-1]):
        if p not in node or not isinstance(node[p], ml_collections.ConfigDict):
            here = ".".join(parts[: i + 1])
            raise ConfigError(
                f"override {key}: {here!r} is not a section of the config{_suggest(here, _all_keys(cfg))}"
            )
        node = node[p]
    leaf = parts[-1]
    section = ".".join(parts[:-1])
    if leaf not in node and section not in OPEN_SECTIONS:
        raise ConfigError(f"override {key}: no such key in the config{_suggest(key, _all_keys(cfg))}")
    if leaf in node and isinstance(node[leaf], ml_collections.ConfigDict):
        raise ConfigError(
            f"override {key}: is a section, not a value (set one of its keys, "
            f"e.g. {key}.{next(iter(node[leaf].keys()), 'x')}=...)"
        )
    current = node[leaf] if leaf in node else None
    value = convert_value(text, current, key)
    try:
        with node.unlocked():
            if leaf in node and current is None and not _typed_none(node, leaf):
                # An untyped None field takes anything only after replacing it wholesale.
                del node[leaf]
            node[leaf] = value
    except (TypeError, KeyError, ValueError) as e:
        raise ConfigError(f"override {key}={text!r}: {e}") from e


def _typed_none(node: ml_collections.ConfigDict, leaf: str) -> bool:
    """True for a ``FieldReference(None, field_type=T)`` (keeps its type T)."""
    field = node._fields.get(leaf)  # no public accessor tells a typed None from a plain one
    return isinstance(field, ml_collections.FieldReference) and field.get_type() is not type(None)


def split_config_flags(argv: list[str]) -> tuple[list[str], str | None, list[str]]:
    """Separate ``--config=FILE`` / ``--config FILE`` and ``--config.a.b=v`` /
    ``--config.a.b v`` (ml_collections ``config_flags`` spelling) from other arguments.

    Returns (remaining argv, config file or None, overrides as "a.b=v").
    """
    rest, overrides, path = [], [], None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--config" or a.startswith("--config="):
            if "=" in a:
                path = a.split("=", 1)[1]
            else:
                if i + 1 >= len(argv):
                    raise ConfigError("--config: expected a config file")
                path, i = argv[i + 1], i + 1
        elif a.startswith("--config."):
            body = a[len("--config.") :]
            if "=" in body:
                overrides.append(body)
            else:
                if i + 1 >= len(argv):
                    raise ConfigError(f"--config.{body}: expected a value")
                overrides.append(f"{body}={argv[i + 1]}")
                i += 1
        else:
            rest.append(a)
        i += 1
    return rest, path, overrides


def load_config(path, overrides: Iterable[str] = ()) -> ml_collections.ConfigDict:
    """Import the config file at ``path``, call its ``get_config()``, apply overrides.

    The returned ConfigDict records ``config_file`` (as given) unless the config sets it.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    mod_name = "fedpsyau_config_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"config file {path} cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise ConfigError(f"config file {path} failed to import: {type(e).__name__}: {e}") from e
    if not hasattr(module, "get_config"):
        raise ConfigError(f"config file {path} defines no get_config()")
    cfg = module.get_config()
    if not isinstance(cfg, ml_collections.ConfigDict):
        raise ConfigError(
            f"config file {path}: get_config() returned {type(cfg).__name__}, expected ml_collections.ConfigDict"
        )
    check_renamed_keys(cfg, f"config file {path}")
    for o in overrides or ():
        apply_override(cfg, o)
    if "config_file" not in cfg:
        with cfg.unlocked():
            cfg.config_file = str(path)
    return cfg


def base_config() -> ml_collections.ConfigDict:
    """Every option of a training run with its default; config files start from this.

    The training defaults are the project's recipe: linear warm-up (1 epoch) then
    cosine decay of the learning rate (its value per step is an argument of the
    compiled step), AdamW weight decay 0.01 on kernels only, the flow-respecting
    horizontal flip with probability 0.5, the AU BCE normalised per example, and
    class-balanced oversampling; configs set the peak rate, epochs and class balance
    and say how each was chosen.

    seed                      run seed (fold f's randomness = f(seed, f) only)
    data.name                 a ``data_pipelines.datasets`` name
    data.root / cache_dir     release folder / sample cache (None = defaults)
    data.kwargs               extra ``load_dataset`` arguments
    data.only_au_labelled     keep only samples with AU labels (AU pre-training)
    model.name                fedpsyau | ststnet | offapexnet | sssnet (the shallow
                              flow networks the literature compares with, on the
                              same 28×28 flow; no AU branch, no pre-training)
    model.use_au_branch       False = flow-stream-only baseline (paper Table 3, I)
    model.group_tokens        paper (Table 1, default) | reference (the reference code's
                              swapped G3/G4 token sets)
    model.roi_source          flow128 | flow28 (ROI patches of the 28-px flow, for data
                              whose 128-px flow is only an upsample)
    model.au_node_norm        l2 (the paper: every AU node L2-normalised) | none
    model.gat_dropout         dropout inside each DPK-GAT module (paper 0.5)
    model.au_head_dropout     dropout of the two AU heads (paper 0.5)
    model.init_from           exported model whose AU-branch params initialise every
                              fold (AU pre-training, paper §5.1); None = random init
    protocol.kind             loso | kfold | all | inner_val | leave_dataset_out (one
                              fold per source dataset, tested on it, trained on the
                              others);  k, shuffle, split_seed for
                              kfold; inner_outer, val_fraction (and split_seed) for
                              inner_val (settings chosen on training subjects only)
    prior.source              fold_train (D from the fold's training AU labels) or a
                              preset name (reference_dfme)
    train.*                   epochs, batch_size, eval_batch_size, learning_rate (peak),
                              weight_decay, lr_schedule (constant | warmup_cosine),
                              warmup_epochs, min_lr_ratio, decay_kernels_only,
                              class_balance (oversample | weighted_ce | none), hflip
                              (flip probability), au_norm (examples | known_entries),
                              au_pos_weight (none | balanced: n⁻/n⁺ per AU of the fold),
                              alpha, beta_schedule, beta0, fold_rng (per_fold |
                              shared: every fold draws init, dropout and batch order
                              from the same streams), eval_flip (test outputs = mean
                              logits over the sample and its mirror,
                              ``training.flip_averaging``) — see TrainSettings
    pretrain.*                AU pre-training inside every fold (``training.au_pretraining``):
                              epochs (0 = none), learning_rate, au_pos_weight, val_fraction
                              (inner-validation subjects for the per-AU thresholds),
                              subject_folds (0 = one stage-1 run per fold; k >= 2 = k
                              stage-1 models on a subject k-fold, shared by the folds),
                              part_balance (none: subjects dealt to the k parts at
                              random | dataset: every source dataset's samples spread
                              evenly over the parts),
                              au_calibration (thresholds: stage 1's per-AU thresholds
                              on the final heads | platt: stage 1's held-out subjects
                              also stay out of stage 2's AU loss and calibrate the
                              final heads, ``training.au_calibration``)
    export.final_model        all_data (also train one model on every sample and
                              export it as workdir/final_model) | none
    runtime.fold_chunk        folds trained at once by vmap (1 = sequential); does not
                              change results, may change on resume
    runtime.checkpoint_every  epochs between resume checkpoints of a chunk (0 = never)
    runtime.shard_folds       auto (a chunk's folds spread over all visible devices when
                              there are several; padded to a multiple) | off
    """
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.data = ml_collections.ConfigDict(
        dict(name="synthetic", root=None, cache_dir=None, kwargs=ml_collections.ConfigDict(), only_au_labelled=False)
    )
    c.data.root = ml_collections.FieldReference(None, field_type=str)
    c.data.cache_dir = ml_collections.FieldReference(None, field_type=str)
    c.model = ml_collections.ConfigDict(
        dict(
            name="fedpsyau",
            use_au_branch=True,
            group_tokens="paper",
            roi_source="flow128",
            au_node_norm="l2",
            gat_dropout=0.5,
            au_head_dropout=0.5,
        )
    )
    c.model.init_from = ml_collections.FieldReference(None, field_type=str)
    c.protocol = ml_collections.ConfigDict(
        dict(kind="loso", k=10, shuffle=True, split_seed=1, inner_outer=2, val_fraction=0.2)
    )
    c.prior = ml_collections.ConfigDict(dict(source="fold_train"))
    c.train = ml_collections.ConfigDict(
        dict(
            epochs=30,
            batch_size=32,
            eval_batch_size=64,
            learning_rate=5e-5,
            weight_decay=0.01,
            lr_schedule="warmup_cosine",
            warmup_epochs=1.0,
            min_lr_ratio=0.0,
            decay_kernels_only=True,
            class_balance="oversample",
            hflip=0.5,
            au_norm="examples",
            au_pos_weight="none",
            alpha=(0.2, 0.8, 0.8),
            beta_schedule="reference",
            beta0=0.3,
            fold_rng="per_fold",
            eval_flip=False,
        )
    )
    c.pretrain = ml_collections.ConfigDict(
        dict(
            epochs=0,
            learning_rate=1e-3,
            au_pos_weight="balanced",
            val_fraction=0.2,
            subject_folds=0,
            part_balance="none",
            au_calibration="thresholds",
        )
    )
    c.export = ml_collections.ConfigDict(dict(final_model="all_data"))
    c.runtime = ml_collections.ConfigDict(dict(fold_chunk=8, checkpoint_every=1, shard_folds="auto"))
    return c
