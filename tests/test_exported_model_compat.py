"""A model exported by the code before the package was split into layers still loads
and gives the same outputs.

The exporting side runs the last commit before the split (taken from this clone's git
history into a temporary folder, in a subprocess whose ``PYTHONPATH`` puts it first):
it writes a model with random weights the way ``fedpsyau train`` exports one (with the
test helper of that commit) and records its own outputs on a fixed batch. This checkout then loads that folder with
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

# Runs with the old tree first on PYTHONPATH: its own test helper exports a model with
# random weights the way `fedpsyau train` exports one; the run is then marked as
# evaluated with mirror averaging, and the old code's outputs on the batch recorded.
EXPORT_WITH_OLD_CODE = r"""
import json, sys
from pathlib import Path
import numpy as np
from fedpsyau_jax import api
from test_video_recognition import random_exported_model

dest, out, batch = Path(sys.argv[1]), Path(sys.argv[2]), dict(np.load(sys.argv[3]))
model_dir = random_exported_model(dest)
meta_file = model_dir / "metadata.json"
meta = json.loads(meta_file.read_text())
meta["config"]["train"].update(eval_flip=True, beta_schedule="reference", beta0=0.3, epochs=3)
meta_file.write_text(json.dumps(meta))
probs, au = api.model_probabilities(*api.load_model(dest), batch)
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
        subprocess.run(
            [git, "-C", str(ROOT), "archive", BEFORE_SPLIT, "fedpsyau_jax", "data_pipelines", "tests/test_video_recognition.py"],
            stdout=fh, check=True,
        )
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
    old = tmp_path / "old"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(old), str(old / "tests")])}
    done = subprocess.run(
        [sys.executable, "-c", EXPORT_WITH_OLD_CODE, str(tmp_path / "export"), str(tmp_path / "old_out.npz"),
         str(tmp_path / "batch.npz")],
        env=env, cwd=tmp_path, capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    before = np.load(tmp_path / "old_out.npz")

    model, variables, meta = inference.load_model(tmp_path / "export")  # a run folder holding final_model/
    probs, au = inference.model_probabilities(model, variables, meta, batch)
    np.testing.assert_allclose(probs, before["probs"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(au, before["au"], rtol=0, atol=1e-6)
    assert meta["config"]["train"]["eval_flip"] is True  # outputs formed as the run evaluated
    assert meta["class_names"] == ["negative", "positive", "surprise"]
