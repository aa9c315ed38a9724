"""Spotting F1 on the synthetic spotting benchmark: our spotter vs a frame-difference baseline.

    python benchmarks/spotting_synthetic.py --tune      # seed 1 (12 videos): choose the constants
    python benchmarks/spotting_synthetic.py             # seed 3 (8 videos): report (constants fixed)

Videos (640x480, 30 fps, 20 s each; a real face with injected micro-/macro-expressions
and distractors, ``data_pipelines/spotting_synthetic.py``) are written once to
``runs/spotting_bench/seed<k>/`` and reused. ``--tune`` grid-searches the threshold
constant c of both spotters (and the macro-scale c of ours) for the best pooled overall
F1 on seed 1 and prints them (then, with those, the edge fraction and the talking
rule's jaw-swing count); they are then fixed in ``fedpsyau_jax/video/intervals.py``
and ``frame_difference.py``. The report runs both spotters with those constants on
seed 3 (never used for choosing anything; seed 2 was the report set of an earlier
round, see RESULTS.md) and prints pooled MEGC scores (IoU ≥ 0.5).
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BASELINE_GRID = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0)
GRID = (1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0)


def bench_set(folder: Path, seed: int, n_videos: int) -> dict:
    """The first ``n_videos`` videos of seed ``seed`` (video i has seed seed*1000+i;
    missing ones are rendered, existing ones reused) and their ground truth."""
    from data_pipelines.spotting_synthetic import make_spotting_video
    from fedpsyau_jax.core.atomic_files import write_json_atomic
    gt_path = folder / "ground_truth.json"
    gt = json.loads(gt_path.read_text()) if gt_path.is_file() else {}
    out = {}
    for i in range(n_videos):
        stem = f"synth_{seed}_{i}"
        if stem not in gt or not (folder / f"{stem}.mp4").is_file():
            print(f"rendering {folder / stem}.mp4 ...", flush=True)
            gt[stem] = make_spotting_video(folder / f"{stem}.mp4", seed * 1000 + i)
            write_json_atomic(gt_path, gt)
        out[stem] = gt[stem]
    return out


def features(folder: Path, gt: dict) -> dict:
    """Per video: spotting-pass arrays (cached per chunk in folder/cache) and the baseline signal."""
    from fedpsyau_jax.video.analyse import AnalyseParams, spotting_pass
    from fedpsyau_jax.video.frame_difference import frame_difference_signal
    from fedpsyau_jax.video.frame_stream import probe
    out = {}
    for stem in gt:
        info = probe(folder / f"{stem}.mp4")
        sp = spotting_pass(info, AnalyseParams(), folder / "cache" / stem, show_progress=False)
        out[stem] = (info, sp, frame_difference_signal(info))
    return out


def spans(intervals, fps):
    from fedpsyau_jax.video.spotting_metric import Span
    return [Span(i.onset, i.offset, i.kind) for i in intervals]


def ours(feats, c_micro, c_macro, edge=None):
    from fedpsyau_jax.video.intervals import EDGE_FRACTION, SpotParams, spot_intervals
    p = SpotParams(threshold_c=c_micro, threshold_c_macro=c_macro, edge_fraction=edge or EDGE_FRACTION)
    return {s: spans(spot_intervals(sp["region_flow"], sp["face"], info.fps, p)[0], info.fps)
            for s, (info, sp, _) in feats.items()}


def baseline(feats, c):
    from fedpsyau_jax.video.frame_difference import intervals_from_signal
    return {s: spans(intervals_from_signal(score, face, info.fps, c), info.fps)
            for s, (info, _, (score, face)) in feats.items()}


def truth(gt):
    from fedpsyau_jax.video.spotting_metric import Span
    return {s: [Span(e["onset"], e["offset"], e["kind"]) for e in v["intervals"]] for s, v in gt.items()}


def table(name, sc):
    rows = [f"{name}"]
    for k in ("micro", "macro", "overall"):
        r = sc[k]
        rows.append(f"  {k:8s} TP {r['tp']:3d} FP {r['fp']:3d} FN {r['fn']:3d}  P {r['precision']:.3f}  "
                    f"R {r['recall']:.3f}  F1 {r['f1']:.3f}")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tune", action="store_true", help="choose thresholds on seed 1")
    ap.add_argument("--videos", type=int, default=None, help="videos in the set (tune 12, report 8)")
    ap.add_argument("--seed", type=int, default=None, help="report seed (default 3; never 1)")
    ap.add_argument("--folder", default=str(ROOT / "runs" / "spotting_bench"))
    ap.add_argument("--figure", default=None, help="also analyse the first report video with "
                    "--checkpoint and save its timeline plot, ground truth drawn in, here")
    ap.add_argument("--checkpoint", default=None, help="model for --figure")
    a = ap.parse_args()
    from fedpsyau_jax.video import frame_difference, intervals
    from fedpsyau_jax.video.spotting_metric import spotting_scores
    seed = 1 if a.tune else (a.seed or 3)
    if seed == 1 and not a.tune:
        ap.error("seed 1 is the tuning set; report on another seed")
    n = a.videos or (12 if a.tune else 8)
    folder = Path(a.folder) / f"seed{seed}"
    gt = bench_set(folder, seed, n)
    t0 = time.time()
    feats = features(folder, gt)
    g = truth(gt)
    n_gt = sum(len(v) for v in g.values())
    print(f"seed {seed}: {n} videos, {sum(v['frames'] for v in gt.values())} frames, {n_gt} ground-truth "
          f"intervals ({sum(e.kind == 'micro' for v in g.values() for e in v)} micro); features {time.time() - t0:.0f} s")
    if a.tune:
        best = max(((spotting_scores(ours(feats, cm, cM), g)["overall"]["f1"], cm, cM)
                    for cm, cM in itertools.product(GRID, GRID)))
        # ties (e.g. all zero) go to the smallest c
        best_b = max(((spotting_scores(baseline(feats, c), g)["overall"]["f1"], -c) for c in BASELINE_GRID))
        best_b = (best_b[0], -best_b[1])
        print(f"ours: best overall F1 {best[0]:.3f} at threshold_c {best[1]} threshold_c_macro {best[2]}")
        for edge in (0.6, 0.7, 0.8, 0.9):
            f1 = spotting_scores(ours(feats, best[1], best[2], edge), g)["overall"]["f1"]
            print(f"  with those, edge_fraction {edge}: overall F1 {f1:.3f}")
        default_n = intervals.TALK_MIN_SWINGS
        for n_talk in (3, 4, 5, 6, 10 ** 6):
            intervals.TALK_MIN_SWINGS = n_talk
            f1 = spotting_scores(ours(feats, best[1], best[2]), g)["overall"]["f1"]
            print(f"  with those, talking suppression at {n_talk if n_talk < 10 ** 6 else 'off'} "
                  f"jaw swings: overall F1 {f1:.3f}")
        intervals.TALK_MIN_SWINGS = default_n
        print(f"frame difference: best overall F1 {best_b[0]:.3f} at threshold_c {best_b[1]}")
        return 0
    print(f"constants (chosen on seed 1): ours c_micro {intervals.THRESHOLD_C}, c_macro "
          f"{intervals.THRESHOLD_C_MACRO}; frame difference c {frame_difference.THRESHOLD_C}")
    print(table("ours (region flow, second difference)", spotting_scores(ours(feats, intervals.THRESHOLD_C, intervals.THRESHOLD_C_MACRO), g)))
    print(table("baseline (frame difference)", spotting_scores(baseline(feats, frame_difference.THRESHOLD_C), g)))
    if a.figure:
        import csv
        import numpy as np
        from fedpsyau_jax.video.analyse import analyse_video
        from fedpsyau_jax.video.timeline_outputs import plot_timeline
        stem = next(iter(gt))
        out = folder / "figure_run"
        t = analyse_video(folder / f"{stem}.mp4", out, a.checkpoint, show_progress=False)
        with open(out / "frames.csv") as f:
            rows = list(csv.DictReader(f))
        col = lambda k: np.array([float(r[k]) for r in rows])
        fps = gt[stem]["fps"]
        gt_bars = [{"onset_s": e["onset"] / fps, "offset_s": e["offset"] / fps, "kind": e["kind"]}
                 for e in gt[stem]["intervals"]]
        plot_timeline(t, col("timestamp"), col("score_micro"), col("score_macro"), Path(a.figure),
                      title=f"{stem} (synthetic, seed {seed}): spotted intervals shaded by recognised emotion",
                      truth=gt_bars)
        print(f"figure: {a.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
