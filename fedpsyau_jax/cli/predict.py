"""``fedpsyau predict --video clip.mp4 [--onset N --apex M] --checkpoint DIR``.

Runs the whole pipeline on one clip (face detection, crop, TV-L1 flow, landmarks,
model) and prints emotion and AU probabilities. DIR is an exported model
(``<run>/final_model``, or any ``<run>/folds/<k>/model``) or a run directory that
holds ``final_model/``. Without --apex the apex is the frame of largest flow from
the onset (first frame unless --onset is given). predict assumes ONE expression: on
a clip longer than ``MULTI_CHECK_S`` seconds without --onset/--apex it also runs the
spotter, and when that finds several expressions it says that ``fedpsyau analyse``
is the command for such a recording.
"""

from __future__ import annotations

import argparse
import json
import sys

MULTI_CHECK_S = 2.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--video", required=True, help="video file or folder of frames")
    p.add_argument("--checkpoint", required=True, help="exported model dir or run dir")
    p.add_argument("--onset", type=int, default=None, help="onset frame (default: first)")
    p.add_argument("--apex", type=int, default=None, help="apex frame (default: spotted)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def run(args) -> int:
    from pathlib import Path

    from data_pipelines.video_pipeline import check_onset_apex, input_identity
    from fedpsyau_jax import api

    # Every input is checked before the model is restored or a frame decoded.
    input_identity(args.video)  # "does not exist" (MissingMediaError)
    check_onset_apex(Path(args.video).stem, args.onset, args.apex)
    from fedpsyau_jax.training.checkpoints import CheckpointError, read_metadata

    if not Path(args.checkpoint).exists():
        raise CheckpointError(
            f"--checkpoint {args.checkpoint}: does not exist (an exported model "
            "folder such as <run>/final_model, or a run directory)"
        )
    model_dir = api.resolve_model_dir(args.checkpoint)  # CheckpointError naming the path
    read_metadata(model_dir.parent, model_dir.name)  # ... or the corrupt metadata file
    from fedpsyau_jax.model_card import model_card_summary

    out = api.predict(args.video, args.checkpoint, onset=args.onset, apex=args.apex)
    out["model_card"] = model_card_summary(model_dir)
    if args.onset is None and args.apex is None:
        hint = several_expressions_hint(args.video)
        if hint:
            print(f"fedpsyau predict: note: {hint}", file=sys.stderr)
    check = out["input_check"]
    if args.json:
        if check["status"] != "inside":  # never only a field in the JSON
            print(f"fedpsyau predict: input check: {check['message']}", file=sys.stderr)
        print(json.dumps(out, indent=1))
        return 0
    print(f"model: {out['model_card']}")
    print(
        f"video {out['video']}: onset {out['onset']}, apex {out['apex']}"
        + (" (spotted)" if out["apex_spotted"] else "")
    )
    print(f"emotion: {out['emotion']}")
    for c, p in out["emotion_prob"].items():
        print(f"  P({c}) = {p:.4f}")
    if "au_prob" in out:
        print("AU probabilities: " + "  ".join(f"{a} {p:.2f}" for a, p in out["au_prob"].items()))
    print(f"input check: {check['message']}")
    return 0


def several_expressions_hint(video) -> str | None:
    """One line pointing to ``analyse`` when the spotter finds several expressions in
    a clip longer than ``MULTI_CHECK_S`` (None otherwise)."""
    from fedpsyau_jax.video.analyse import spot_only
    from fedpsyau_jax.video.frame_stream import probe

    info = probe(video)
    if info.is_folder or info.frame_count < MULTI_CHECK_S * info.fps:
        return None
    found = spot_only(video)
    if len(found) < 2:
        return None
    where = ", ".join(f"{iv.onset}-{iv.offset}" for iv in found[:4]) + (", ..." if len(found) > 4 else "")
    return (
        f"{video}: the spotter finds {len(found)} expressions (frames {where}), but predict reads a clip "
        f"as one expression with its onset at the first frame; for a recording with several expressions use "
        f"`fedpsyau analyse --video {video} --checkpoint <model> --out <folder>`"
    )
