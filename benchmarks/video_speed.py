"""Frames per second of `fedpsyau analyse` on 640x480, 30 fps video, split by stage.

    python benchmarks/video_speed.py [--seconds 20] [--chunk-frames 300]

Writes a synthetic 640x480 30 fps clip (``data_pipelines/spotting_synthetic.py``: 4
micro-, 1 macro-expression and distractors, so recognition has intervals to do),
a random-weight exported FedPsyAU (speed does not depend on the weights), then runs
``analyse_video`` twice: cold (no chunk cache, includes the model's one-off compile)
and once more on a fresh cache folder with the model already compiled (the steady
state). Prints frames per second of decoding, face tracking (dlib detection + 68
landmarks), spotting flow (alignment, Farneback, region means), the whole spotting
pass, and seconds per recognised interval (model input via dlib and TV-L1, then the model). Also
prints the 1-minute load average, because figures on a shared machine depend on it.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--chunk-frames", type=int, default=300)
    a = ap.parse_args()
    from data_pipelines.spotting_synthetic import make_spotting_video
    from fedpsyau_jax.video.analyse import AnalyseParams, analyse_video
    from fedpsyau_jax.training.exported_model import write_random_model
    tmp = Path(tempfile.mkdtemp(prefix="video_speed_"))
    try:
        n = int(round(a.seconds * 30))
        video = tmp / "clip.mp4"
        make_spotting_video(video, seed=3, n_frames=n)
        model = write_random_model(tmp / "model", ["negative", "positive", "surprise"], group_tokens="paper", roi_source="flow128")
        params = AnalyseParams(chunk_frames=a.chunk_frames)
        for run in ("cold (compile included)", "warm"):
            load = os.getloadavg()[0]
            t0 = time.perf_counter()
            t = analyse_video(video, tmp / f"out_{run[:4]}", model, params=params, show_progress=False)
            wall = time.perf_counter() - t0
            s = t["timing_s"]
            k = max(1, len(t["intervals"]))
            print(f"[{run}] {n} frames 640x480, load average {load:.2f} (2 cores), {len(t['intervals'])} intervals")
            print(f"  decode           {n / max(s['decode'], 1e-9):8.1f} fps")
            print(f"  face tracking    {n / max(s['track'], 1e-9):8.1f} fps")
            print(f"  spotting flow    {n / max(s['flow'], 1e-9):8.1f} fps")
            print(f"  spotting pass    {n / s['spotting_pass']:8.1f} fps (decode + tracking + flow + caching)")
            print(f"  recognition      {s['recognition'] / k:8.2f} s per interval ({s['recognition']:.1f} s)")
            print(f"  whole analyse    {n / wall:8.1f} fps ({wall:.1f} s wall, outputs included)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
