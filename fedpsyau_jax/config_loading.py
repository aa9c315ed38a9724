"""Load an experiment config file (``get_config() -> ml_collections.ConfigDict``).

    cfg = load_config("configs/synthetic_demo.py", ["train.epochs=2", "data.kw.seed=3"])

Overrides are ``dotted.key=value`` strings. The value is converted to the type of the
existing entry (bool accepts true/false/1/0/yes/no; int/float parse; tuples and lists
parse as Python literals); a key that is absent, or holds None, takes the Python
literal if the text is one, else the string. Unknown keys under an existing
ConfigDict are allowed (new options), but the parent must exist.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
from pathlib import Path
from typing import Iterable

import ml_collections

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


class ConfigError(ValueError):
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


def apply_override(cfg: ml_collections.ConfigDict, override: str) -> None:
    """Apply one ``a.b.c=value`` override to ``cfg`` in place."""
    if "=" not in override:
        raise ConfigError(f"override {override!r} must look like key.sub=value")
    key, text = override.split("=", 1)
    key = key.strip()
    parts = key.split(".")
    node = cfg
    for i, p in enumerate(parts[:-1]):
        if p not in node or not isinstance(node[p], ml_collections.ConfigDict):
            raise ConfigError(f"override {key}: {'.'.join(parts[:i + 1])!r} is not a section of the config")
        node = node[p]
    leaf = parts[-1]
    current = node[leaf] if leaf in node else None
    value = convert_value(text, current, key)
    try:
        with node.unlocked():
            if leaf in node and current is None:
                # A None field is typed "anything" only after replacing it wholesale.
                del node[leaf]
            node[leaf] = value
    except (TypeError, KeyError) as e:
        raise ConfigError(f"override {key}={text!r}: {e}") from e


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
        raise ConfigError(f"config file {path}: get_config() returned {type(cfg).__name__}, "
                          "expected ml_collections.ConfigDict")
    for o in overrides or ():
        apply_override(cfg, o)
    if "config_file" not in cfg:
        with cfg.unlocked():
            cfg.config_file = str(path)
    return cfg


def base_config() -> ml_collections.ConfigDict:
    """Every option of a training run with its default; config files start from this.

    seed                      run seed (fold f's randomness = f(seed, f) only)
    data.name                 a ``data_pipelines.datasets`` name
    data.root / cache_dir     release folder / sample cache (None = defaults)
    data.kwargs               extra ``load_dataset`` arguments
    data.only_au_labelled     keep only samples with AU labels (AU pre-training)
    model.use_au_branch       False = flow-stream-only baseline (paper Table 3, I)
    model.init_from           exported model whose AU-branch params initialise every
                              fold (AU pre-training, paper §5.1); None = random init
    protocol.kind             loso | kfold | all;  k, shuffle, split_seed for kfold
    prior.source              fold_train (D from the fold's training AU labels) or a
                              preset name (reference_dfme)
    train.*                   epochs, batch_size, eval_batch_size, learning_rate,
                              weight_decay, oversample, alpha, beta_schedule, beta0
    export.final_model        all_data (also train one model on every sample and
                              export it as workdir/final_model) | none
    runtime.fold_chunk        folds trained at once by vmap (1 = sequential); does not
                              change results, may change on resume
    runtime.checkpoint_every  epochs between resume checkpoints of a chunk (0 = never)
    """
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.data = ml_collections.ConfigDict(dict(name="synthetic", root=None, cache_dir=None,
                                            kwargs=ml_collections.ConfigDict(), only_au_labelled=False))
    c.data.root = ml_collections.FieldReference(None, field_type=str)
    c.data.cache_dir = ml_collections.FieldReference(None, field_type=str)
    c.model = ml_collections.ConfigDict(dict(use_au_branch=True))
    c.model.init_from = ml_collections.FieldReference(None, field_type=str)
    c.protocol = ml_collections.ConfigDict(dict(kind="loso", k=10, shuffle=True, split_seed=1))
    c.prior = ml_collections.ConfigDict(dict(source="fold_train"))
    c.train = ml_collections.ConfigDict(dict(
        epochs=30, batch_size=32, eval_batch_size=64, learning_rate=5e-5, weight_decay=0.01,
        oversample=True, alpha=(0.2, 0.8, 0.8), beta_schedule="reference", beta0=0.3))
    c.export = ml_collections.ConfigDict(dict(final_model="all_data"))
    c.runtime = ml_collections.ConfigDict(dict(fold_chunk=8, checkpoint_every=1))
    return c
