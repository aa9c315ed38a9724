"""What a config's run is made of: its samples, its network, its folds, the device
mesh of the fold axis, and the metadata every saved model of the run carries."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from fedpsyau_jax.config_loading import ConfigError
from fedpsyau_jax.core.sample_arrays import MESamples
from fedpsyau_jax.network.model import FedPsyAU, has_au_branch, model_options
from fedpsyau_jax.training import protocols
from fedpsyau_jax.training.settings import TrainSettings, settings_from_config


def fold_mesh(cfg):
    """A device mesh for the fold axis (``runtime.shard_folds``): "auto" shards each
    chunk of folds across all visible devices when there are several, "off" never."""
    mode = str(cfg.runtime.get("shard_folds", "auto"))
    if mode not in ("auto", "off"):
        raise ConfigError(f"runtime.shard_folds {mode!r}: choose auto or off")
    if mode == "off" or jax.device_count() < 2:
        return None
    from fedpsyau_jax.training.sharding import row_mesh

    return row_mesh()


def load_samples(cfg) -> MESamples:
    """The dataset named by ``cfg.data`` (name, root, cache_dir, kwargs). A loader argument
    added after a run config was saved takes the value that run was trained with
    (``datasets.SAVED_CONFIG_DEFAULTS``: a composite config without
    ``data.kwargs.landmark_frame`` means "apex")."""
    from data_pipelines.datasets import config_loader_kwargs, load_dataset

    d = cfg.data
    root = Path(d.root).expanduser() if d.get("root") else None
    cache = Path(d.cache_dir).expanduser() if d.get("cache_dir") else None
    kw = d.get("kwargs") or {}
    kw = kw.to_dict() if hasattr(kw, "to_dict") else dict(kw)
    samples = load_dataset(d.name, root=root, cache_dir=cache, **config_loader_kwargs(d.name, kw))
    only = d.get("only_au_labelled", False)
    if only:  # AU pre-training: keep only frames with AU labels (paper §5.1)
        keep = samples.au_mask.sum(axis=1) > 0
        if not keep.any():
            raise ValueError(f"dataset {d.name!r}: no sample has AU labels (only_au_labelled=True)")
        samples = samples.take(np.nonzero(keep)[0])
    return samples


def build_model(cfg, num_classes: int) -> FedPsyAU:
    """The network of ``cfg.model`` for ``num_classes`` classes (centralised and
    federated training alike): FED-PsyAU, its flow-only twin, or a baseline
    (``model.name``)."""
    m = cfg.model
    return FedPsyAU(num_classes=int(num_classes), use_au_branch=has_au_branch(m), **model_options(m))


def pretrain_epochs(cfg) -> int:
    """Epochs of stage 1 (AU pre-training); 0 where the config has none or no AU branch."""
    p = cfg.get("pretrain")
    return int(p.get("epochs", 0)) if p is not None and has_au_branch(cfg.model) else 0


def run_setup(cfg, cfg_dict: dict) -> tuple[TrainSettings, MESamples, FedPsyAU, list, dict]:
    """(settings, samples, model, folds incl. the all-data one, checkpoint metadata) of
    a config: what training and stage 1 alone share."""
    s = settings_from_config(cfg)
    samples = load_samples(cfg)
    model = build_model(cfg, samples.num_classes)
    folds = protocols.folds_from_config(cfg, samples)
    if cfg.export.final_model == "all_data" and cfg.protocol.kind != "all":
        folds = folds + [protocols.all_data_fold(len(samples), len(folds))]
    model_meta = {
        "num_classes": samples.num_classes,
        "class_names": list(samples.class_names),
        "use_au_branch": has_au_branch(cfg.model),
        **model_options(cfg.model),
        "config": cfg_dict,
    }
    return s, samples, model, folds, model_meta
