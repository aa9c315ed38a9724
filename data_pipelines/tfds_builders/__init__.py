"""TFDS builders for the project's micro-expression datasets (array_record, no TensorFlow).

Two ways to get a dataset, same ``MESamples`` at the end:

* In memory, no tfds at all: ``data_pipelines.datasets.load_dataset(name, root=...)``
  (or ``data_pipelines.synthetic.make_synthetic``). This is what training uses by default.
* As a built TFDS dataset on disk (array_record files, random access, shareable, no TF
  needed to write or read)::

      from data_pipelines.tfds_builders import BUILDERS, tfds_to_samples
      b = BUILDERS["casme2"](data_dir=tfds_dir)
      b.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=release))
      source = b.as_data_source()["train"]     # random access: source[i] -> dict of numpy
      samples = tfds_to_samples("casme2", "train", data_dir=tfds_dir)

  Importing this package registers the builders, so ``tfds.data_source("casme2",
  split="train", data_dir=..., download=False)`` works too. Generation calls
  ``load_dataset(name, root=<manual_dir>)``; ``synthetic`` generates its data itself.

Builders: casme3, dfme, casme2, samm, smic, megc2019_composite, disfa, ckplus, synthetic
(configs of synthetic: default, small, seven_class; any builder also takes a custom
``MEBuilderConfig(name=..., load_kwargs={...})`` whose kwargs go to the loader).
Features per sample: flow128, flow28, landmarks, label, au, au_mask, subject, name,
dataset, index (position in the source ``MESamples``; TFDS stores examples in hashed
key order, ``tfds_to_samples`` restores the original order). Class names and the
JSON-serialisable ``MESamples.meta`` are in ``builder.info.metadata``.
"""

from data_pipelines.tfds_builders.builders import BUILDERS
from data_pipelines.tfds_builders.me_builder import MEBuilder, MEBuilderConfig, me_features
from data_pipelines.tfds_builders.read_back import tfds_builder, tfds_to_samples

__all__ = ["BUILDERS", "MEBuilder", "MEBuilderConfig", "me_features", "tfds_builder", "tfds_to_samples"]
