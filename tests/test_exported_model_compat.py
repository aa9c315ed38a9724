"""A model exported by the code before the package was split into layers still loads
and gives the same outputs.

The exporting side runs the last commit before the split (taken from this clone's git
history into a temporary folder, in a subprocess whose ``PYTHONPATH`` puts it first):
it writes a model with random weights the way ``fedpsyau train`` exports one and
records its own outputs on a fixed batch. This checkout then loads that folder with
``inference.load_model`` and must give the same outputs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BEFORE_SPLIT = "b8175fa56c601682deaa9902244ee91b7bbe25bb"  # last commit with api.py as the hub

EXPORT_WITH_OLD_CODE = r"""
import sys
from pathlib import Path

import jax
import numpy as np

from fedpsyau_jax import api
from fedpsyau_jax.network.model import FedPsyAU
from fedpsyau_jax.training.checkpoints import save_checkpoint

dest, out = Path(sys.argv[1]), Path(sys.argv[2])
model = FedPsyAU(num_classes=3, use_au_branch=True, group_tokens="paper", roi_source="flow128")
rng = np.random.default_rng(0)

def fill(path, leaf):
    name = str(path[-1])
    if "var" in name:
        return np.ones(leaf.shape, leaf.dtype)
    if "mean" in name:
        return np.zeros(leaf.shape, leaf.dtype)
    return (0.05 * rng.standard_normal(leaf.shape)).astype(leaf.dtype)

v = jax.tree_util.tree_map_with_path(fill, api._abstract_variables(model))
meta = {"num_classes": 3, "class_names": ["negative", "positive", "surprise"], "use_au_branch": True,
        "group_tokens": "paper", "roi_source": "flow128",
        "config": {"train": {"epochs": 3, "beta_schedule": "reference", "beta0": 0.3, "eval_flip": True}}}
save_checkpoint(dest, "final_model", v, meta)
batch = dict(np.load(sys.argv[3]))
loaded, variables, meta = api.load_model(dest)
probs, au = api.model_probabilities(loaded, variables, meta, batch)
np.savez(out, probs=probs, au=au)
"""


def _old_tree(dst: Path) -> None:
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("needs this clone's git history (git and .git)")
    if subprocess.run([git, "-C", str(ROOT), "cat-file", "-e", f"{BEFORE_SPLIT}^{{commit}}"]).returncode:
        pytest.skip(f"commit {BEFORE_SPLIT[:7]} is not in this clone (shallow clone?)")
    archive = dst / "old.tar"
    with open(archive, "wb") as fh:
        subprocess.run([git, "-C", str(ROOT), "archive", BEFORE_SPLIT, "fedpsyau_jax", "data_pipelines"], stdout=fh, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dst / "old", filter="data")


def test_a_model_exported_before_the_split_loads_and_predicts_the_same(tmp_path):
    from fedpsyau_jax import inference

    _old_tree(tmp_path)
    rng = np.random.default_rng(1)
    batch = {
        "flow128": rng.random((2, 128, 128, 3), np.float32),
        "flow28": rng.random((2, 28, 28, 3), np.float32),
        "landmarks": (8 + 112 * rng.random((2, 65, 2))).astype(np.float32),
    }
    np.savez(tmp_path / "batch.npz", **batch)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "old")}
    done = subprocess.run(
        [sys.executable, "-c", EXPORT_WITH_OLD_CODE, str(tmp_path / "export"), str(tmp_path / "old_out.npz"),
         str(tmp_path / "batch.npz")],
        env=env, cwd=tmp_path, capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    old = np.load(tmp_path / "old_out.npz")

    model, variables, meta = inference.load_model(tmp_path / "export")  # a run folder holding final_model/
    probs, au = inference.model_probabilities(model, variables, meta, batch)
    np.testing.assert_allclose(probs, old["probs"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(au, old["au"], rtol=0, atol=1e-6)
    assert meta["class_names"] == ["negative", "positive", "surprise"]
