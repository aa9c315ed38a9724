"""Recognition of spotted intervals by a trained model: emotion and AU probabilities.

Each interval's model input is built by ``data_pipelines.video_pipeline.clip_to_sample``
on its onset and apex frames at full resolution — the function every training sample
goes through (dlib face and landmarks on the onset, the crop box, apex
aligned to the onset, TV-L1 on 128-px crops, strain, min-max encoding, 65 keypoints),
with the ``PipelineParams`` that match how the model's training inputs were made
(``input_check.input_pipeline``: the released MEGC2019 composite's face box for a model
trained on it, else the default of dataset preprocessing). The cheap spotting flow is
never fed to the model. Each input is compared with the model's training inputs
(``input_check.check_input``); an interval whose input lies outside them says so.

Only the frames that intervals need are kept, in a second sequential decode pass.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import cast

import cv2
import numpy as np

from data_pipelines.sample_errors import SampleError
from data_pipelines.video_pipeline import PipelineParams, clip_to_sample
from fedpsyau_jax.video.frame_stream import VideoInfo, iter_frames
from fedpsyau_jax.video.intervals import Interval

log = logging.getLogger(__name__)


class Recogniser:
    """An exported model (``fedpsyau train`` → final_model) ready to classify inputs."""

    def __init__(self, checkpoint):
        from fedpsyau_jax import inference

        self.checkpoint = str(checkpoint)
        from fedpsyau_jax.training.input_check import input_pipeline

        self.model, self.variables, self.meta = inference.load_model(checkpoint)
        self.class_names = list(self.meta["class_names"])
        self.pipeline = input_pipeline(self.meta)  # inputs cut as its training inputs were

    def probabilities(self, samples: list[dict]) -> tuple[np.ndarray, np.ndarray | None]:
        """One model call per sample (a batch of one, exactly as ``predict``; the jitted
        apply is compiled once and a handful of intervals per minute need no batching)."""
        from fedpsyau_jax import inference

        keys = ("flow128", "flow28", "landmarks")
        probs: list[np.ndarray] = []
        aus: list[np.ndarray | None] = []
        for s in samples:
            batch = {k: np.asarray(s[k], np.float32)[None] for k in keys}
            p, au = inference.model_probabilities(self.model, self.variables, self.meta, batch)
            probs.append(p[0])
            aus.append(None if au is None else au[0])
        # one model: it gives AU probabilities for every sample or for none
        return np.stack(probs), (None if aus[0] is None else np.stack(cast(list[np.ndarray], aus)))


def needed_positions(intervals: list[Interval], params: PipelineParams) -> set[int]:
    need = set()
    for iv in intervals:
        need |= {iv.onset, iv.apex}
        if params.apex_window:
            need |= {iv.apex - 1, iv.apex + 1} - {iv.onset}
    return need


def collect_frames(info: VideoInfo, positions: set[int]) -> dict[int, np.ndarray]:
    """Grey frames at the given stream positions (one decode pass, stops after the last)."""
    out: dict[int, np.ndarray] = {}
    if not positions:
        return out
    last = max(positions)
    for pos, (_, _, img) in enumerate(iter_frames(info)):
        if pos in positions:
            out[pos] = img
        if pos >= last:
            break
    return out


def recognise(
    info: VideoInfo,
    intervals: list[Interval],
    recogniser: Recogniser,
    params: PipelineParams | None = None,
    progress=None,
) -> list[dict]:
    """One dict per interval: ``emotion``, ``emotion_prob`` {class: p}, ``au_prob``
    {AUn: p} (when the model has an AU branch), ``input_check`` (``input_check.check_input``),
    ``apex_crop`` (128x128 uint8, the aligned face for the report), or
    ``recognition_error`` (one line) when the model input cannot be built (no face in
    the onset frame, no motion). ``params`` None: the model's own (``Recogniser.pipeline``)."""
    from fedpsyau_jax.core.au_groups import AU_ORDER
    from fedpsyau_jax.training.input_check import check_input

    p = params or recogniser.pipeline
    frames = collect_frames(info, needed_positions(intervals, p))
    stem = Path(info.path).stem
    results: list[dict] = [{} for _ in intervals]
    samples, where = [], []
    for i, iv in enumerate(intervals):
        try:
            neigh = [frames[q] for q in (iv.apex - 1, iv.apex + 1) if p.apex_window and q in frames and q != iv.onset]
            s = clip_to_sample(
                frames[iv.onset],
                frames[iv.apex],
                align=p.align,
                apex_neighbors=neigh,
                exactly_one_face=p.exactly_one_face,
                tvl1_params=dict(p.tvl1),
                crop=p.crop,
                name=f"{stem} interval {iv.onset}-{iv.offset}",
            )
            samples.append(s)
            where.append(i)
            results[i]["apex_crop"] = s["apex_crop"]
            results[i]["input_check"] = check = check_input(recogniser.meta, s)
            if check["status"] == "outside":
                log.warning("%s: %s", f"{stem} interval {iv.onset}-{iv.offset}", check["message"])
        except (SampleError, KeyError, cv2.error) as e:
            msg = f"{type(e).__name__}: {e}"
            results[i]["recognition_error"] = msg
            log.warning("%s", msg)
        if progress is not None:
            progress.update(1)
    if samples:
        probs, au = recogniser.probabilities(samples)
        for j, i in enumerate(where):
            pr = probs[j]
            results[i]["emotion"] = recogniser.class_names[int(np.argmax(pr))]
            results[i]["emotion_prob"] = {c: round(float(x), 6) for c, x in zip(recogniser.class_names, pr)}
            if au is not None:
                results[i]["au_prob"] = {f"AU{a}": round(float(x), 6) for a, x in zip(AU_ORDER, au[j])}
    return results
