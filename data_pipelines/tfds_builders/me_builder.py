"""The one generic TFDS builder behind every micro-expression dataset of the project.

Each concrete builder (``builders.py``) only names its source dataset and says where
the release goes; generation is ``MESamples`` -> one TFDS example per sample, and the
records are written as ``array_record`` files, so the result can be read back by
random access (``builder.as_data_source()``) with no TensorFlow installed.

Checked against tensorflow-datasets 4.9.10 without TensorFlow: ``download_and_prepare``
(GeneratorBasedBuilder, ``file_format="array_record"``), the example serializer, the
shuffler and ``as_data_source`` all run on tfds' own no-TF code paths, given three
precautions taken here: (1) the file format defaults to array_record (tfds' default,
tfrecord, writes through ``tf.io.TFRecordWriter``: "No module named 'tensorflow'" in
``TfRecordFileAdapter.write_examples``); (2) ``code_path`` is overridden (a tfds bug,
see the comment there); (3) ``DatasetInfo`` is built directly, not with
``dataset_info_from_configs``, which reads README/CITATIONS files from the builder's
package folder. ``as_dataset`` stays unavailable: it returns a ``tf.data.Dataset``.
"""

from __future__ import annotations

import abc
import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import tensorflow_datasets as tfds

from fedpsyau_jax.core.au_groups import NUM_AUS
from fedpsyau_jax.core.keypoints import NUM_KEYPOINTS
from fedpsyau_jax.core.sample_arrays import MESamples

SPLIT = "train"  # one split: protocols (LOSO, federated clients) split by subject later

# Flows are stored as raw float32 bytes: exact round trip, no per-value protobuf cost.
_RAW = tfds.features.Encoding.BYTES


@dataclasses.dataclass
class MEBuilderConfig(tfds.core.BuilderConfig):
    """A builder config whose ``load_kwargs`` go to the dataset loader unchanged
    (e.g. class mapping options of ``load_dataset``, or ``make_synthetic`` sizes)."""

    load_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)


def me_features() -> tfds.features.FeaturesDict:
    """Feature spec of one sample (the model inputs plus ids); ``index`` is the sample's
    position in the source ``MESamples``, kept because TFDS reorders examples."""
    return tfds.features.FeaturesDict(
        {
            "flow128": tfds.features.Tensor(shape=(128, 128, 3), dtype=np.float32, encoding=_RAW),
            "flow28": tfds.features.Tensor(shape=(28, 28, 3), dtype=np.float32, encoding=_RAW),
            "landmarks": tfds.features.Tensor(shape=(NUM_KEYPOINTS, 2), dtype=np.float32, encoding=_RAW),
            "label": tfds.features.Scalar(dtype=np.int32),
            "au": tfds.features.Tensor(shape=(NUM_AUS,), dtype=np.float32),
            "au_mask": tfds.features.Tensor(shape=(NUM_AUS,), dtype=np.float32),
            "subject": tfds.features.Text(),
            "name": tfds.features.Text(),
            "dataset": tfds.features.Text(),
            "index": tfds.features.Scalar(dtype=np.int64),
        }
    )


class MEBuilder(tfds.core.GeneratorBasedBuilder):
    """Generic builder: subclasses set ``SOURCE`` (the ``load_dataset`` name),
    ``MANUAL_DOWNLOAD_INSTRUCTIONS`` and a description.

    Class names and the JSON-serialisable part of ``MESamples.meta`` are not per-sample
    features; they go into ``info.metadata`` (``metadata.json`` next to the records),
    which is written after generation, so they need not be known before loading.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: flows, landmarks, labels and AUs of each sample."}
    BUILDER_CONFIGS = [MEBuilderConfig(name="default", description="loader defaults")]
    DEFAULT_BUILDER_CONFIG_NAME = "default"
    DESCRIPTION: ClassVar[str] = ""

    def __init__(self, *, file_format: str | tfds.core.FileFormat | None = None, **kwargs: Any):
        # tfds defaults to tfrecord, whose writer and reader are tf.io/tf.data: choose
        # array_record (pure C++/Python, random access) unless the caller insists.
        super().__init__(file_format=file_format or tfds.core.FileFormat.ARRAY_RECORD, **kwargs)

    # tfds 4.9.10 bug worked around here: ``DatasetBuilder.code_path``
    # (tensorflow_datasets/core/dataset_builder.py, line 345) evaluates
    # ``isinstance(path, importlib_resources.abc.Traversable)`` for any builder defined
    # inside a package, but tfds only requires the ``importlib_resources`` backport on
    # Python < 3.9, so ``download_and_prepare`` dies with "ModuleNotFoundError: No
    # module named 'importlib_resources'" (via url_infos -> _checksums_path -> code_path).
    # code_path only locates a checksums file for downloaded URLs; our data comes from
    # manual folders or the generator, so "no code path" is the correct answer and it
    # also keeps tfds from ever writing checksum files into the source tree.
    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls):
        return None

    @property
    @abc.abstractmethod
    def SOURCE(self) -> str:  # noqa: N802  (a class constant in every subclass)
        """Dataset name understood by ``data_pipelines.datasets.load_dataset``."""

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.DESCRIPTION or f"{self.SOURCE} micro-expression samples: flows, landmarks, labels, AUs.",
            features=me_features(),
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        samples = self._load_samples(dl_manager)
        if len(samples) == 0:
            raise ValueError(f"{self.name}: the loader returned no samples")
        if len(set(samples.name.tolist())) != len(samples):
            raise ValueError(f"{self.name}: sample names are not unique; TFDS keys need them to be")
        self.info.metadata["class_names"] = list(samples.class_names)
        self.info.metadata["num_samples"] = len(samples)
        self.info.metadata["meta"] = _json_safe(samples.meta)
        return {SPLIT: self._generate_examples(samples)}

    def _load_samples(self, dl_manager: tfds.download.DownloadManager) -> MESamples:
        # manual_dir first: when the release is missing, tfds raises with our
        # MANUAL_DOWNLOAD_INSTRUCTIONS, which is the useful message.
        root = Path(dl_manager.manual_dir)
        # Imported lazily: the loaders pull in the readers and the video pipeline,
        # which a user reading an already built dataset does not need.
        from data_pipelines.datasets import load_dataset

        return load_dataset(self.SOURCE, root=root, **self.builder_config.load_kwargs)

    def _generate_examples(self, samples: MESamples):
        for i in range(len(samples)):
            yield (
                str(samples.name[i]),
                {
                    "flow128": samples.flow128[i].astype(np.float32),
                    "flow28": samples.flow28[i].astype(np.float32),
                    "landmarks": samples.landmarks[i].astype(np.float32),
                    "label": int(samples.label[i]),
                    "au": samples.au[i].astype(np.float32),
                    "au_mask": samples.au_mask[i].astype(np.float32),
                    "subject": str(samples.subject[i]),
                    "name": str(samples.name[i]),
                    "dataset": str(samples.dataset[i]),
                    "index": i,
                },
            )


def _json_safe(obj: Any) -> Any:
    """The JSON-serialisable part of ``obj``: dicts/lists/scalars kept, small numpy
    arrays as lists; anything else (large arrays, objects) left out rather than failing."""
    if isinstance(obj, dict):
        pairs = ((str(k), _json_safe(v)) for k, v in obj.items())
        return {k: v for k, v in pairs if v is not _DROP}
    if isinstance(obj, (list, tuple)):
        return [v for v in map(_json_safe, obj) if v is not _DROP]
    if isinstance(obj, np.ndarray):
        return obj.tolist() if obj.size <= 64 else _DROP
    if isinstance(obj, np.generic):
        return obj.item()
    try:
        json.dumps(obj)
        return obj
    except (TypeError, ValueError):
        return _DROP


_DROP = object()  # marker for "not representable in JSON"
