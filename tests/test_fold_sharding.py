"""A chunk of folds sharded across devices gives the unsharded run's results
(4 forced host devices; 3 folds, so one padding row per chunk)."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = r'''
import json, sys
import jax, numpy as np
from fedpsyau_jax import api, load_config
from fedpsyau_jax.training.fold_training import load_fold_predictions
assert jax.device_count() == 4, jax.devices()
out = {}
for mode in ("off", "auto"):
    cfg = load_config(sys.argv[1], [
        "data.kwargs.num_subjects=3", "data.kwargs.samples_per_subject=4", "model.use_au_branch=false",
        "train.epochs=1", "train.batch_size=4", "train.eval_batch_size=4", "runtime.fold_chunk=3",
        "export.final_model=none", "runtime.checkpoint_every=0", f"runtime.shard_folds={mode}"])
    wd = sys.argv[2] + "/" + mode
    api.train(cfg, wd, show_progress=False, verbose=False)
    import glob
    out[mode] = {p.split("/")[-2]: load_fold_predictions(__import__("pathlib").Path(p))["prob"].tolist()
                 for p in sorted(glob.glob(wd + "/folds/*/predictions.npz"))}
print("RESULT" + json.dumps(out))
'''


def test_sharded_fold_chunk_equals_unsharded(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu",     # the suite's XLA flags plus 4 host devices
               XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip())
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT / "configs" / "synthetic_demo.py"), str(tmp_path)],
                       capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.split("RESULT", 1)[1])
    assert sorted(res["off"]) == sorted(res["auto"]) and len(res["off"]) == 3
    import numpy as np
    for fold, prob in res["off"].items():
        np.testing.assert_allclose(np.asarray(res["auto"][fold]), np.asarray(prob), atol=1e-5, err_msg=fold)
