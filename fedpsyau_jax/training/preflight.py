"""Start-up checks of ``api.train``: everything that can be validated before work.

``check_train_start(cfg, workdir)`` runs before any sample is loaded, anything is
compiled or any file is written, and raises a ``UserError`` (one line naming the
input) for:

- ``--workdir`` that is a file (or below a file);
- an unknown dataset name, protocol, prior source or export mode, an impossible k;
- a ``data.root`` that does not exist;
- a ``model.init_from`` that is not a readable exported model (``CheckpointError``);
- a workdir that holds a *started* run (metrics, folds or checkpoints written) with a
  different config (``CheckpointError``, as before).

A ``config.json`` alone (no metrics, folds or checkpoints) is the leftover of a start
that failed before training; it never blocks a corrected retry: the retry's config
replaces it. ``api.train`` writes ``config.json`` only after its start has succeeded.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from fedpsyau_jax.core.errors import InputFileError, UserError, check_output_dir, unknown_name
from fedpsyau_jax.training.checkpoints import CheckpointError
from fedpsyau_jax.training.au_pretraining import PART_BALANCES

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
# Files/folders that mean training has started in a workdir (see api.train).
PROGRESS_MARKERS = ("metrics.jsonl", "folds", "checkpoints", "summary.json", "final_model")
EXPORT_MODES = ("all_data", "none")
AU_CALIBRATIONS = ("thresholds", "platt")
# Config sections that may differ when resuming (they do not change any result).
RESUME_FREE = ("config_file", "runtime")


def config_dict(cfg) -> dict:
    return json.loads(cfg.to_json_best_effort(sort_keys=True))


def run_started(workdir: Path) -> bool:
    """True when ``workdir`` holds any output of a run that got past its start."""
    return any((Path(workdir) / m).exists() for m in PROGRESS_MARKERS)


def check_names(cfg) -> None:
    from data_pipelines.datasets import check_dataset_name
    from fedpsyau_jax.training.protocols import PRIOR_SOURCES, PROTOCOLS

    check_dataset_name(str(cfg.data.name))
    kind = str(cfg.protocol.kind)
    if kind not in PROTOCOLS:
        raise unknown_name("protocol.kind", kind, PROTOCOLS)
    if kind == "kfold":
        k = cfg.protocol.get("k", 10)
        if int(k) < 2:
            raise UserError(f"protocol.k {k}: k-fold needs k >= 2")
    from fedpsyau_jax.core.au_groups import GROUP_TOKEN_SETS
    from fedpsyau_jax.network.baselines import ARCHITECTURES
    from fedpsyau_jax.network.model import AU_NODE_NORMS, ROI_SOURCES
    from fedpsyau_jax.training.settings import CLASS_BALANCE, LR_SCHEDULES
    from fedpsyau_jax.training.losses import AU_NORMS, AU_POS_WEIGHTS

    for key, choices in (
        ("model.name", ARCHITECTURES),
        ("model.group_tokens", tuple(GROUP_TOKEN_SETS)),
        ("model.roi_source", ROI_SOURCES),
        ("model.au_node_norm", AU_NODE_NORMS),
        ("train.class_balance", CLASS_BALANCE),
        ("train.lr_schedule", LR_SCHEDULES),
        ("train.au_norm", AU_NORMS),
        ("train.au_pos_weight", AU_POS_WEIGHTS),
        ("pretrain.au_pos_weight", AU_POS_WEIGHTS),
    ):
        section, leaf = key.split(".")
        value = cfg.get(section, {}).get(leaf) if cfg.get(section) is not None else None
        if value is not None and str(value) not in choices:
            raise unknown_name(key, str(value), choices)
    source = str(cfg.prior.source)
    if source not in PRIOR_SOURCES:
        raise unknown_name("prior.source", source, PRIOR_SOURCES)
    pretrain = cfg.get("pretrain")
    init_from = cfg.model.get("init_from") if cfg.get("model") else None
    if init_from and pretrain is not None and int(pretrain.get("epochs", 0) or 0) > 0:
        # Stage 1 starts every fold from scratch and its models become stage 2's start,
        # so the init checkpoint would be silently ignored.
        raise UserError(
            f"model.init_from {init_from} with pretrain.epochs {int(pretrain.epochs)}: in-fold AU pre-training "
            "would replace the init checkpoint; set pretrain.epochs=0 to fine-tune from it, or drop model.init_from"
        )
    subject_folds = int(pretrain.get("subject_folds", 0) or 0) if pretrain is not None else 0
    if subject_folds == 1 or subject_folds < 0:
        raise UserError(
            f"pretrain.subject_folds {subject_folds}: use 0 (one stage-1 run per fold) "
            "or k >= 2 (k shared stage-1 models on a subject k-fold)"
        )
    balance = str(pretrain.get("part_balance", "none")) if pretrain is not None else "none"
    if balance not in PART_BALANCES:
        raise unknown_name("pretrain.part_balance", balance, PART_BALANCES)
    calibration = str(pretrain.get("au_calibration", "thresholds")) if pretrain is not None else "thresholds"
    if calibration not in AU_CALIBRATIONS:
        raise unknown_name("pretrain.au_calibration", calibration, AU_CALIBRATIONS)
    from fedpsyau_jax.network.model import has_au_branch

    # (without the AU branch there is nothing to calibrate and the option does nothing)
    if calibration == "platt" and has_au_branch(cfg.model) and not int(pretrain.get("epochs", 0) or 0) > 0:
        raise UserError(
            "pretrain.au_calibration platt calibrates the AU heads on stage 1's held-out subjects: "
            "it needs AU pre-training (pretrain.epochs > 0)"
        )
    export = cfg.get("export", {}).get("final_model", "none") if cfg.get("export") else "none"
    if str(export) not in EXPORT_MODES:
        raise unknown_name("export.final_model", export, EXPORT_MODES)


def check_inputs(cfg) -> None:
    root = cfg.data.get("root")
    if root and not Path(root).exists():
        raise InputFileError(f"data.root {root}: does not exist")
    init_from = cfg.model.get("init_from") if cfg.get("model") else None
    if init_from:
        from fedpsyau_jax.training.checkpoints import read_metadata

        p = Path(init_from)
        if not p.is_dir():
            raise CheckpointError(
                f"model.init_from {p}: does not exist (expected an exported model folder, e.g. <run>/final_model)"
            )
        meta = read_metadata(p.parent, p.name)
        missing = [k for k in ("num_classes", "use_au_branch") if k not in meta]
        if missing:
            raise CheckpointError(f"model.init_from {p}: metadata lacks {missing} (not an exported model)")


def with_defaults(d: dict) -> dict:
    """``d`` with every key of ``base_config`` it lacks set to its default, so the
    config of a run saved before an option existed compares equal to a config that
    leaves the option at its default (and a run can still be resumed or skipped)."""
    from fedpsyau_jax.config_loading import base_config

    def merge(default, got):
        if not (isinstance(default, dict) and isinstance(got, dict)):
            return got
        both = set(default) | set(got)
        return {k: merge(default[k], got[k]) if k in default and k in got else got.get(k, default.get(k)) for k in both}

    return merge(config_dict(base_config()), d)


def check_workdir(workdir: Path, cfg_dict: dict) -> None:
    check_output_dir(workdir, what="--workdir")
    cfg_path = workdir / CONFIG_FILE
    if not cfg_path.is_file():
        return
    started = run_started(workdir)
    try:
        old = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        if started:
            raise CheckpointError(
                f"--workdir {workdir}: {CONFIG_FILE} of the run there is unreadable ({e}); use a fresh --workdir"
            ) from None
        return  # leftover of a failed start: replaced once this start succeeds
    old = with_defaults(old)
    cfg_dict = with_defaults(cfg_dict)
    comparable = lambda d: {k: v for k, v in d.items() if k not in RESUME_FREE}  # noqa: E731
    if comparable(old) == comparable(cfg_dict):
        return
    diff = sorted(k for k in set(old) | set(cfg_dict) if k not in RESUME_FREE and old.get(k) != cfg_dict.get(k))
    if started:
        raise CheckpointError(
            f"--workdir {workdir}: holds a run with a different config (sections "
            f"{diff} differ); use a fresh --workdir, or the same config to resume"
        )
    log.info(
        "%s: %s is from a start that failed before training (sections %s differ); it will be replaced",
        workdir,
        CONFIG_FILE,
        diff,
    )


def check_train_start(cfg, workdir) -> dict:
    """Validate a train start; returns the config as a JSON dict (for config.json).

    Writes nothing. Order: names, inputs, workdir (so the message is about the first
    problem a user would fix)."""
    cfg_dict = config_dict(cfg)
    check_names(cfg)
    check_inputs(cfg)
    check_workdir(Path(workdir), cfg_dict)
    return cfg_dict
