"""Face tracking over a frame stream: dlib detection + 68 landmarks on every frame.

Per frame the shape predictor runs inside a box derived from the previous frame's
landmarks (about 2 ms, against 15–40 ms for the HOG detector), and the detector runs
only (a) while no face is held, (b) every ``redetect_every`` frames, to notice that
the face has gone (the shape predictor always returns 68 points, face or not), and
(c) when the landmarks jump implausibly (inner-eye distance changing by more than
``max_scale_jump`` between frames). A frame where the confirming detection finds no
face is a *gap* frame (``landmarks`` None); frames between two confirmations are
trusted, so a face that disappears is reported at most ``redetect_every - 1`` frames
late (documented in docs/video.md).

Landmarks are smoothed over time with an exponential moving average (``smoothing``
is the weight of the new frame); the average restarts after every gap, so a face
re-found elsewhere never drags its old position along.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from data_pipelines import face_landmarks
from fedpsyau_jax.core.keypoints import DLIB_INNER_EYE_LEFT, DLIB_INNER_EYE_RIGHT


@dataclasses.dataclass(frozen=True)
class TrackParams:
    redetect_every: int = 10  # frames between confirming detections
    smoothing: float = 0.6  # EMA weight of the newest landmarks (1 = no smoothing)
    max_scale_jump: float = 0.25  # relative inner-eye distance change that forces a re-detection

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _eye_distance(lm: np.ndarray) -> float:
    return float(np.hypot(*(lm[DLIB_INNER_EYE_RIGHT] - lm[DLIB_INNER_EYE_LEFT])))


def _box_from_landmarks(lm: np.ndarray):
    """A detector-like square box around the landmarks (what dlib's predictor expects)."""
    import dlib

    x0, y0 = lm.min(0)
    x1, y1 = lm.max(0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 0.05 * (y1 - y0)
    half = 0.55 * max(x1 - x0, y1 - y0)
    return dlib.rectangle(int(round(cx - half)), int(round(cy - half)), int(round(cx + half)), int(round(cy + half)))


class FaceTracker:
    """Stateful tracker; ``update(gray)`` → (68, 2) float32 smoothed landmarks or None.

    ``detected`` tells whether the detector ran on the last frame (for the speed split
    and for tests). The state is deliberately small (last landmarks, frame counter) so
    that a chunk of video can start a fresh tracker and give the same result whatever
    happened before it (chunks are cached independently, see ``stream_cache``).
    """

    def __init__(self, params: TrackParams | None = None):
        self.p = params or TrackParams()
        self._last: np.ndarray | None = None  # smoothed landmarks of the previous frame
        self._since_detect = 0
        self.detected = False

    def update(self, gray: np.ndarray) -> np.ndarray | None:
        img = face_landmarks.as_gray_uint8(gray, "video frame")
        self.detected = False
        box = None
        if self._last is None or self._since_detect + 1 >= self.p.redetect_every:
            box = self._detect(img)
            if box is None:
                self._last = None
                return None
        else:
            box = _box_from_landmarks(self._last)
            self._since_detect += 1
        lm = face_landmarks.landmarks68(img, box, what="video frame")
        if self._last is not None and not self.detected:
            jump = abs(_eye_distance(lm) / max(_eye_distance(self._last), 1e-6) - 1.0)
            if jump > self.p.max_scale_jump:
                box = self._detect(img)
                if box is None:
                    self._last = None
                    return None
                lm = face_landmarks.landmarks68(img, box, what="video frame")
                self._last = None  # a new face: restart the average
        if self._last is not None:
            a = self.p.smoothing
            lm = a * lm + (1.0 - a) * self._last
        self._last = lm.astype(np.float32)
        return self._last

    def _detect(self, img: np.ndarray):
        self.detected = True
        self._since_detect = 0
        faces = face_landmarks.detect_faces(img)
        return faces[0][0] if faces else None
