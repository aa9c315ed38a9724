"""TFDS builders: build the synthetic dataset as array_record and read it back, no TF."""
import json
from pathlib import Path
import sys

import numpy as np
import pytest

import tensorflow_datasets as tfds  # a pinned dependency: missing must fail, not skip

from data_pipelines.synthetic import make_synthetic  # noqa: E402
from data_pipelines.tfds_builders import BUILDERS, MEBuilderConfig, tfds_builder, tfds_to_samples  # noqa: E402
from fedpsyau_jax.core.sample_arrays import ARRAY_FIELDS, STR_FIELDS  # noqa: E402


@pytest.fixture(scope="module")
def built_small(tmp_path_factory):
    tfds.disable_progress_bar()
    data_dir = tmp_path_factory.mktemp("tfds")
    builder = BUILDERS["synthetic"](data_dir=str(data_dir), config="small")
    builder.download_and_prepare()
    return data_dir, builder


def test_every_dataset_has_a_builder():
    assert set(BUILDERS) == {"casme3", "dfme", "casme2", "samm", "smic", "megc2019_composite",
                             "disfa", "ckplus", "synthetic"}
    for name, cls in BUILDERS.items():
        assert cls.name == name
        assert name in tfds.list_builders(with_community_datasets=False)
        if name != "synthetic":
            assert "<manual_dir>" in cls.MANUAL_DOWNLOAD_INSTRUCTIONS


def test_build_writes_array_record_and_metadata(built_small):
    data_dir, builder = built_small
    files = sorted(p.name for p in Path(builder.data_dir).iterdir())
    assert any(f.startswith("synthetic-train.array_record-") for f in files), files
    assert not any("tfrecord" in f for f in files)
    md = json.loads((Path(builder.data_dir) / "metadata.json").read_text())
    assert md["class_names"] == ["negative", "positive", "surprise"]
    assert md["meta"]["synthetic"] is True and md["num_samples"] == 12
    assert builder.info.splits["train"].num_examples == 12


def test_round_trip_exact_without_tensorflow(built_small):
    data_dir, _ = built_small
    got = tfds_to_samples("synthetic", "train", data_dir, config="small")
    want = make_synthetic(num_subjects=4, samples_per_subject=3)
    assert "tensorflow" not in sys.modules
    for f in ARRAY_FIELDS:
        a, b = getattr(got, f), getattr(want, f)
        assert a.dtype == b.dtype and a.shape == b.shape, f
        np.testing.assert_array_equal(a, b, err_msg=f)
    for f in STR_FIELDS:
        assert getattr(got, f).tolist() == getattr(want, f).tolist(), f
    assert got.class_names == want.class_names
    assert got.meta["synthetic"] is True and got.meta["tfds"]["config"] == "small"


def test_random_access_data_source(built_small):
    data_dir, builder = built_small
    source = builder.as_data_source(split="train")
    assert len(source) == 12
    ex = source[5]
    assert ex["flow128"].shape == (128, 128, 3) and ex["flow128"].dtype == np.float32
    assert ex["landmarks"].shape == (65, 2)
    # the generic tfds entry point also works (builders are registered on import)
    src2 = tfds.data_source("synthetic", split="train", data_dir=str(data_dir), download=False,
                            builder_kwargs={"config": "small"})
    np.testing.assert_array_equal(src2[5]["flow28"], ex["flow28"])
    assert "tensorflow" not in sys.modules


def test_custom_config_passes_load_kwargs(tmp_path):
    tfds.disable_progress_bar()
    cfg = MEBuilderConfig(name="tiny7", load_kwargs={"num_subjects": 2, "samples_per_subject": 7,
                                                     "num_classes": 7, "seed": 5})
    BUILDERS["synthetic"](data_dir=str(tmp_path), config=cfg).download_and_prepare()
    got = tfds_to_samples("synthetic", "train", tmp_path, config=cfg)
    assert len(got) == 14 and got.num_classes == 7
    np.testing.assert_array_equal(got.flow28, make_synthetic(2, 7, num_classes=7, seed=5).flow28)


def test_unbuilt_and_unknown_datasets_raise_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="download_and_prepare"):
        tfds_to_samples("synthetic", "train", tmp_path, config="small")
    with pytest.raises(KeyError, match="unknown"):
        tfds_builder("no_such_set", tmp_path)


def test_real_builder_without_release_shows_instructions(tmp_path):
    tfds.disable_progress_bar()
    builder = BUILDERS["casme2"](data_dir=str(tmp_path))
    with pytest.raises(AssertionError, match="CASME2-coding"):
        builder.download_and_prepare()
    assert not builder.is_prepared()


def test_meta_kept_only_where_json_can_hold_it():
    from data_pipelines.tfds_builders.me_builder import _json_safe
    meta = {"a": 1, "arr": np.zeros(3), "big": np.zeros(1000), "obj": object(),
            "nested": {"x": np.float32(2.5), "t": (1, "s")}}
    got = _json_safe(meta)
    assert got == {"a": 1, "arr": [0.0, 0.0, 0.0], "nested": {"x": 2.5, "t": [1, "s"]}}
    json.dumps(got)
