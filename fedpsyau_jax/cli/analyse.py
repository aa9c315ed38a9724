"""``fedpsyau analyse --video FILE --out DIR [--checkpoint DIR]``: a long video → timeline.

Spots micro- and macro-expressions (training-free optical-flow spotter), recognises
each interval with the model given by --checkpoint (an exported model or a run
directory holding final_model/; without it, spotting only) and writes
DIR/timeline.json, timeline.csv, frames.csv, timeline.png and report.html. Finished
chunks are cached in DIR/cache (or --cache), so a re-run or an interrupted run resumes.
Problems of the input (no face, face lost, variable frame rate, rotation, truncation,
very large frames) print as one warning line each; a video without any face exits
with code 2 after writing its (empty) timeline.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--video", required=True, help="video file or folder of numbered frames")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--checkpoint", default=None, help="exported model dir or run dir (optional)")
    p.add_argument("--fps", type=float, default=None, help="frame rate (default: the container's; folders: 30)")
    p.add_argument("--cache", default=None, help="chunk cache folder (default: OUT/cache)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from pathlib import Path

    from fedpsyau_jax.core.errors import InputDataError

    if not Path(args.video).exists():  # before any work
        from data_pipelines.sample_errors import MissingMediaError

        raise MissingMediaError(f"{args.video}: does not exist (expected a video file or a folder of frame images)")
    if args.checkpoint is not None:
        from fedpsyau_jax import api
        from fedpsyau_jax.training.checkpoints import CheckpointError

        if not Path(args.checkpoint).exists():
            raise CheckpointError(
                f"--checkpoint {args.checkpoint}: does not exist (an exported model "
                "folder such as <run>/final_model, or a run directory)"
            )
        model_dir = api.resolve_model_dir(args.checkpoint)
        from fedpsyau_jax.model_card import model_card_summary

        print(f"model: {model_card_summary(model_dir)}")
    from fedpsyau_jax.video.analyse import analyse_video

    t = analyse_video(
        args.video, args.out, args.checkpoint, fps=args.fps, cache_dir=args.cache, show_progress=not args.no_progress
    )
    print(
        f"{t['video']}: {t['frames']} frames at {t['fps']:.2f} fps, {len(t['intervals'])} interval(s), "
        f"{len(t['gaps'])} gap(s) without a face"
    )
    for iv in t["intervals"]:
        emo = f"  {iv['emotion']} ({iv['emotion_prob']:.2f})" if iv.get("emotion") else ""
        if (iv.get("input_check") or {}).get("status") == "outside":
            emo += "  [input outside the model's training inputs]"
        print(
            f"  {iv['kind']:5s} frames {iv['onset']}-{iv['apex']}-{iv['offset']} "
            f"({iv['onset_s']:.2f}-{iv['offset_s']:.2f} s) score {iv['score']:.2f}{emo}"
        )
    from fedpsyau_jax.video.timeline_outputs import input_check_line

    line = input_check_line(t["intervals"])
    if line:
        print(line)
    print(f"outputs: {Path(args.out) / 'report.html'} (and timeline.json, timeline.csv, frames.csv, timeline.png)")
    no_face = [p for p in t["problems"] if "no face found in any" in p]
    if no_face:
        raise InputDataError(no_face[0] + f" (outputs written to {args.out})")
    return 0
