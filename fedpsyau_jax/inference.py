"""An exported model in use: find it, load it, apply it, predict a clip.

    from fedpsyau_jax import inference
    model, variables, meta = inference.load_model("runs/demo")   # or .../final_model
    probs, au = inference.model_probabilities(model, variables, meta, batch)
    out = inference.predict("clip.mp4", "runs/demo")

``apply_fn(model, beta, flip_tta)`` is the jitted eval apply, cached per (model, β,
mirror averaging), so a long video's many intervals compile once. Outputs are formed
the way the model's run evaluated them (mirror averaging, Platt maps of the AU heads).
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from fedpsyau_jax.core.au_groups import AU_ORDER
from fedpsyau_jax.network.model import FedPsyAU
from fedpsyau_jax.training.checkpoints import CheckpointError
from fedpsyau_jax.training.exported_model import FINAL_MODEL, apply_fn, final_beta, model_from_meta, read_model

__all__ = [
    "FINAL_MODEL",
    "apply_fn",
    "final_beta",
    "load_model",
    "model_from_meta",
    "model_probabilities",
    "predict",
    "resolve_model_dir",
]


def resolve_model_dir(checkpoint) -> Path:
    """``checkpoint`` may be a model checkpoint dir or a run dir holding final_model/."""
    p = Path(checkpoint)
    if (p / FINAL_MODEL / "metadata.json").is_file():
        return p / FINAL_MODEL
    if (p / "metadata.json").is_file():
        return p
    raise CheckpointError(
        f"{p}: neither a model checkpoint (metadata.json + state/) nor a run directory with {FINAL_MODEL}/"
    )


def load_model(checkpoint) -> tuple[FedPsyAU, dict, dict]:
    """(model, variables, metadata) of an exported model: ``checkpoint`` is a model
    directory or a run directory holding ``final_model/``."""
    return read_model(resolve_model_dir(checkpoint))


def predict(video, checkpoint, onset: int | None = None, apex: int | None = None) -> dict:
    """Emotion and AU probabilities of one video clip (whole pipeline: face, crop,
    TV-L1 flow, landmarks -> model). Without onset/apex the first frame is the onset
    and the apex is the frame of largest flow from it (``video_to_sample``).

    The input is cut the way the model's training inputs were (``input_check.input_pipeline``:
    e.g. the face box of the released MEGC2019 composite for a model trained on it) and
    compared with them: ``input_check`` (``input_check.check_input``) says whether it
    lies outside them, or that the model stores no summary to compare with."""
    from data_pipelines.video_pipeline import video_to_sample
    from fedpsyau_jax.training.input_check import check_input, input_pipeline

    model, v, meta = load_model(checkpoint)
    params = input_pipeline(meta)
    sample = video_to_sample(video, onset=onset, apex=apex, params=params)
    batch = {k: np.asarray(sample[k])[None] for k in ("flow128", "flow28", "landmarks")}
    probs, au_p = model_probabilities(model, v, meta, batch)
    probs = probs[0]
    out = {
        "video": str(video),
        "class_names": list(meta["class_names"]),
        "emotion_prob": {c: float(p) for c, p in zip(meta["class_names"], probs)},
        "emotion": meta["class_names"][int(np.argmax(probs))],
        "onset": int(sample["onset"]),
        "apex": int(sample["apex"]),
        "apex_spotted": bool(sample.get("apex_spotted", False)),
        "crop": params.crop,
        "input_check": check_input(meta, sample),
    }
    if au_p is not None:
        out["au_prob"] = {f"AU{a}": float(x) for a, x in zip(AU_ORDER, au_p[0])}
    return out


def model_probabilities(model, v, meta, batch) -> tuple[np.ndarray, np.ndarray | None]:
    """(emotion probabilities (B, C), GAT AU probabilities (B, 12) or None) of an
    exported model (``load_model``) on a batch of inputs (``flow128`` (B, 128, 128, 3), ``flow28`` (B, 28, 28, 3),
    ``landmarks`` (B, 65, 2)). A model trained with
    ``pretrain.au_calibration=platt`` carries its per-AU maps in its metadata; its AU
    probabilities are then the calibrated ones (present at >= 0.5). A model whose run
    evaluated with ``train.eval_flip`` is applied the same way (mean logits over the
    sample and its mirror), so its outputs are the ones its thresholds were chosen on."""
    beta = final_beta(meta)
    variables = {"params": v["params"], "batch_stats": v["batch_stats"], "priors": v["priors"]}
    flip = bool(meta.get("config", {}).get("train", {}).get("eval_flip", False))
    emotion, au_gat, _ = apply_fn(model, beta, flip)(variables, batch)
    probs = np.asarray(jax.nn.softmax(emotion, -1))
    if au_gat is None:
        return probs, None
    au = np.asarray(jax.nn.sigmoid(au_gat))
    cal = meta.get("au_calibration", {}).get("gat")
    if cal is not None:
        from fedpsyau_jax.training.au_calibration import apply_platt

        au = apply_platt(au, np.asarray(cal, np.float32))
    return probs, au
