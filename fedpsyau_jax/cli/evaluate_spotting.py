"""``fedpsyau evaluate-spotting --predictions DIR --annotations FILE --format F``.

MEGC spotting scores (IoU ≥ 0.5, one-to-one, TP/FP/FN pooled over videos; precision,
recall, F1 for micro, macro, overall) and, where both sides carry emotions,
spot-then-recognise UF1/UAR on the true positives and STRS. Predictions are the
timeline.json files below DIR. With --videos ROOT (a release folder: CAS(ME)^2
``rawpic/``, SAMM Long Videos frame folders, or the synthetic benchmark folder) every
annotated video without predictions is analysed first (resumable). Formats: casme2
(``CAS(ME)^2code_final(Updated).xlsx``), samm (``SAMM_LongVideos_V3_Release.xlsx``),
casme3 (``CAS(ME)3_part_C_ME.xlsx``),
synthetic (``ground_truth.json``).
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--predictions", required=True, help="folder with <video>/timeline.json")
    p.add_argument("--annotations", required=True, help="annotation workbook or ground_truth.json")
    p.add_argument("--format", required=True, help="casme2, samm, casme3 (Part C) or synthetic")
    p.add_argument("--videos", default=None, help="release folder: analyse annotated videos first")
    p.add_argument("--checkpoint", default=None, help="model for recognition when analysing (optional)")
    p.add_argument("--fps", type=float, default=None, help="frame rate of frame folders (default per format)")
    p.add_argument(
        "--scheme",
        default=None,
        help="map annotated emotions to these classes for "
        "spot-then-recognise (megc3 or emotion7, as the model was trained; default: words as written)",
    )
    p.add_argument("--json", default=None, help="also write the scores to this JSON file")


def run(args) -> int:
    from pathlib import Path

    from fedpsyau_jax.core.atomic_files import write_json_atomic
    from fedpsyau_jax.video.spotting_eval import evaluate_spotting, format_scores

    if args.videos is None and not Path(args.predictions).is_dir():
        from fedpsyau_jax.core.errors import InputFileError

        raise InputFileError(
            f"--predictions {args.predictions}: not a folder (give the folder of "
            "`fedpsyau analyse` outputs, or --videos to analyse a release first)"
        )
    Path(args.predictions).mkdir(parents=True, exist_ok=True)
    res = evaluate_spotting(
        args.predictions,
        args.annotations,
        args.format,
        videos=args.videos,
        checkpoint=args.checkpoint,
        fps=args.fps,
        scheme=args.scheme,
    )
    print(format_scores(res))
    if args.json:
        write_json_atomic(Path(args.json), res)
    return 0
