"""Read a built TFDS micro-expression dataset back into ``MESamples``, without TensorFlow.

Uses ``builder.as_data_source()`` (array_record random access, numpy outputs), never
``as_dataset`` (which returns a ``tf.data.Dataset``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_pipelines.tfds_builders.builders import BUILDERS
from data_pipelines.tfds_builders.me_builder import MEBuilder, MEBuilderConfig
from fedpsyau_jax.core.sample_arrays import MESamples

_BATCH = 256  # records fetched per __getitems__ call: bounds the peak of undecoded bytes


def tfds_builder(name: str, data_dir: str | Path, config: str | MEBuilderConfig | None = None) -> MEBuilder:
    """The project's builder ``name`` rooted at ``data_dir`` (``config`` None = default)."""
    if name not in BUILDERS:
        raise KeyError(f"unknown micro-expression TFDS builder {name!r}; known: {', '.join(BUILDERS)}")
    return BUILDERS[name](data_dir=str(data_dir), config=config)


def tfds_to_samples(
    name: str, split: str = "train", data_dir: str | Path | None = None, config: str | MEBuilderConfig | None = None
) -> MESamples:
    """The built dataset ``name`` (split ``split``) under ``data_dir`` as ``MESamples``,
    in the order of the ``MESamples`` it was generated from.

    Raises FileNotFoundError when it has not been built (``download_and_prepare``) there.
    """
    if data_dir is None:
        raise ValueError("tfds_to_samples needs the data_dir the dataset was built into")
    builder = tfds_builder(name, data_dir, config)
    if not builder.is_prepared():
        raise FileNotFoundError(
            f"TFDS dataset {name!r} (config {builder.builder_config.name!r}, version "
            f"{builder.version}) is not built under {data_dir}; run "
            f"builder.download_and_prepare() first (expected {builder.data_dir})"
        )
    source = builder.as_data_source(split=split)
    n = len(source)
    cols: dict[str, list] = {k: [] for k in builder.info.features.keys()}
    for start in range(0, n, _BATCH):
        for ex in source.__getitems__(list(range(start, min(n, start + _BATCH)))):
            for k, v in ex.items():
                cols[k].append(v)
    if n == 0:
        raise ValueError(f"TFDS dataset {name!r} split {split!r} under {data_dir} is empty")
    order = np.argsort(np.asarray(cols["index"]), kind="stable")

    def arr(k, dtype):
        return np.stack(cols[k]).astype(dtype)[order]

    def text(k):
        return np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in cols[k]])[order]

    md = builder.info.metadata or {}
    if "class_names" not in md:
        raise ValueError(
            f"{builder.data_dir} has no class_names in metadata.json; was it built by data_pipelines.tfds_builders?"
        )
    meta = dict(md.get("meta", {}))
    meta["tfds"] = {
        "name": name,
        "config": builder.builder_config.name,
        "version": str(builder.version),
        "split": split,
        "data_dir": str(builder.data_dir),
    }
    return MESamples(
        flow128=arr("flow128", np.float32),
        flow28=arr("flow28", np.float32),
        landmarks=arr("landmarks", np.float32),
        label=arr("label", np.int32),
        au=arr("au", np.float32),
        au_mask=arr("au_mask", np.float32),
        subject=text("subject"),
        name=text("name"),
        dataset=text("dataset"),
        class_names=tuple(md["class_names"]),
        meta=meta,
    )
