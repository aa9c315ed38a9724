"""Dataset registry: a name -> ``MESamples`` (model-ready arrays) or ``ClipRecord`` list.

    load_dataset("megc2019_composite")            the released composite (cached)
    load_dataset("synthetic", **kw)               data_pipelines.synthetic.make_synthetic
    load_dataset("casme3", root=..., cache_dir=...)   reader + video pipeline
    read_records("casme3", root)                  annotations only, no frames needed

Heavy modules (dlib, OpenCV, the video pipeline) are imported inside the functions
so that listing names or reading records stays cheap.
"""

from __future__ import annotations

from pathlib import Path

from data_pipelines.cache_dirs import CACHE_ENV_VAR, default_cache_dir  # noqa: F401 (re-export)
from data_pipelines.clip_record import ClipRecord
from fedpsyau_jax.core.errors import InputDataError, InputFileError, NameChoiceError, UserError, unknown_name
from fedpsyau_jax.core.sample_arrays import MESamples

# Datasets read from a release root through a reader and the video pipeline.
VIDEO_DATASETS = ("casme2", "samm", "casme3", "dfme", "smic", "ckplus")
DATASET_NAMES: tuple[str, ...] = ("megc2019_composite", "synthetic", *VIDEO_DATASETS)


def check_dataset_name(name: str) -> None:
    """Raise ``NameChoiceError`` (one line, with a suggestion) for an unknown name."""
    if name not in DATASET_NAMES:
        raise unknown_name("dataset", name, DATASET_NAMES)


_check_name = check_dataset_name


def read_records(name: str, root: Path | None, **reader_kw) -> list[ClipRecord]:
    """The annotated clips of a release (every row, dropped classes with label None)."""
    _check_name(name)
    if name not in VIDEO_DATASETS:
        raise NameChoiceError(
            f"dataset {name!r}: has no annotation records; records exist for {', '.join(VIDEO_DATASETS)}"
        )
    if root is None:
        raise UserError(f"dataset {name!r}: needs a root folder (or its label sheet), e.g. --root")
    from data_pipelines.readers import get_reader

    return get_reader(name)(Path(root), **reader_kw)


# Loader arguments added after run configs had been saved, with the value those runs
# were trained with: a saved config without them loads the data its models saw.
SAVED_CONFIG_DEFAULTS: dict[str, dict[str, object]] = {"megc2019_composite": {"landmark_frame": "apex"}}


def config_loader_kwargs(name: str, kw: dict) -> dict:
    """``kw`` of a config's data section, with ``SAVED_CONFIG_DEFAULTS`` filled in where
    the config does not say (the configs in configs/ say)."""
    return {**SAVED_CONFIG_DEFAULTS.get(name, {}), **kw}


def load_dataset(name: str, root: Path | None = None, cache_dir: Path | None = None, **kw) -> MESamples:
    """Model-ready samples of a dataset.

    For the reader-backed datasets only records with a class (label not None) are
    turned into samples; ``kw`` goes to the reader (e.g. ``scheme="emotion7"``).
    For "synthetic", ``kw`` goes to ``make_synthetic`` and root/cache_dir are unused.
    """
    _check_name(name)
    if name == "megc2019_composite":
        from data_pipelines.megc2019_composite import load_megc2019_composite

        return load_megc2019_composite(root=root, cache_dir=cache_dir, **kw)
    if name == "synthetic":
        from data_pipelines.synthetic import make_synthetic

        return make_synthetic(**kw)
    records = [r for r in read_records(name, root, **kw) if r.label is not None]
    if not records:
        raise InputDataError(f"dataset {name!r} at {root}: no records with a class label")
    missing = [r.name for r in records if r.frame_dir is None and not r.frame_paths]
    if missing:
        raise InputFileError(
            f"dataset {name!r} at {root}: {len(missing)} clip(s) have no frame folder "
            f"(e.g. {missing[0]}); pass the dataset root, not only its label sheet"
        )
    from data_pipelines.label_maps import DEFAULT_SCHEME, class_names
    from data_pipelines.video_pipeline import records_to_samples

    names = class_names(kw.get("scheme") or DEFAULT_SCHEME[name])
    return records_to_samples(
        records, cache_dir=Path(cache_dir) if cache_dir else default_cache_dir(), progress=True, class_names=names
    )
