"""Reading a long video as a stream: container facts, frames with timestamps, and
overlapping chunks of bounded size.

Only one chunk of decoded grey frames (plus a few frames of context) is in memory at a
time; its size adapts to the resolution (``chunk_frames`` frames, fewer when that
would exceed ``max_chunk_bytes``), so a 10-minute 1080p video is never held whole.
A folder of numbered frame images is read the same way (frame numbers from the file
names, timestamps from ``--fps``).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from data_pipelines.sample_errors import MissingMediaError, UnreadableMediaError
from data_pipelines.video_io import frame_folder_index, read_image_gray

log = logging.getLogger(__name__)

LARGE_PIXELS = 1920 * 1080


@dataclasses.dataclass
class VideoInfo:
    path: str
    fps: float
    frame_count: int  # what the container claims (0 = unknown)
    width: int
    height: int
    rotation: int  # degrees from the container metadata (frames are decoded upright)
    is_folder: bool = False

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def probe(path: Path | str, fps: float | None = None) -> VideoInfo:
    """Container facts, or ``MissingMediaError``/``UnreadableMediaError`` (one line)."""
    p = Path(path)
    if p.is_dir():
        idx = frame_folder_index(p)
        first = read_image_gray(next(iter(idx.values())))
        return VideoInfo(str(p), float(fps or 30.0), len(idx), first.shape[1], first.shape[0], 0, True)
    if not p.is_file():
        raise MissingMediaError(f"{p}: does not exist (expected a video file or a folder of frame images)")
    cap = cv2.VideoCapture(str(p))
    try:
        if not cap.isOpened():
            raise UnreadableMediaError(f"{p}: OpenCV cannot open this file as a video")
        ok, frame = cap.read()
        if not ok or frame is None:
            raise UnreadableMediaError(f"{p}: no decodable frame (unreadable or truncated video)")
        claimed_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        rot = int(cap.get(cv2.CAP_PROP_ORIENTATION_META) or 0)
        info = VideoInfo(
            str(p),
            float(fps or claimed_fps or 30.0),
            int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0),
            frame.shape[1],
            frame.shape[0],
            rot,
        )
    finally:
        cap.release()
    if not (fps or claimed_fps):
        log.warning("%s: the container gives no frame rate; assuming 30 fps (set --fps)", p)
    return info


def iter_frames(info: VideoInfo) -> Iterator[tuple[int, float, np.ndarray]]:
    """(frame number, timestamp in s, grey frame) in decode order.

    Video files: frame number = 0-based decode index, timestamp from the container
    (CAP_PROP_POS_MSEC) so that a variable frame rate keeps true times. Folders: the
    trailing integer of the file names, timestamp = position / fps.
    """
    p = Path(info.path)
    if info.is_folder:
        for k, (n, f) in enumerate(frame_folder_index(p).items()):
            yield n, k / info.fps, read_image_gray(f)
        return
    cap = cv2.VideoCapture(str(p))
    try:
        i = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            ms = cap.get(cv2.CAP_PROP_POS_MSEC)
            ts = float(ms) / 1000.0 if ms and ms > 0 else i / info.fps
            yield i, ts, (cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame)
            i += 1
        if i == 0:
            raise UnreadableMediaError(f"{p}: video has no decodable frames")
        if info.frame_count > i:
            log.warning(
                "%s: truncated video: %d decodable frames, the container claims %d; analysed frames 0..%d",
                p,
                i,
                info.frame_count,
                i - 1,
            )
    finally:
        cap.release()


def chunk_length(info: VideoInfo, chunk_frames: int, max_chunk_bytes: int) -> int:
    return int(max(16, min(chunk_frames, max_chunk_bytes // max(1, info.width * info.height))))


@dataclasses.dataclass
class Chunk:
    """Frames [start, stop) of the stream (positions), with ``before``/``after`` extra
    frames of context on each side inside ``frames`` (positions start-before ...)."""

    index: int
    start: int
    stop: int
    before: int
    numbers: list[int]  # frame numbers of frames (context included)
    times: list[float]
    frames: list[np.ndarray]

    @property
    def after(self) -> int:
        return len(self.frames) - self.before - (self.stop - self.start)


def iter_chunks(info: VideoInfo, length: int, context: int) -> Iterator[Chunk]:
    """Consecutive chunks of ``length`` frames, each with up to ``context`` frames of
    the neighbouring chunks on both sides (read once, kept in a small buffer)."""
    buf: list[tuple[int, float, np.ndarray]] = []  # frames from position buf_start on
    buf_start = 0
    start = 0
    index = 0
    it = iter_frames(info)
    done = False
    while True:
        need = start + length + context
        while not done and buf_start + len(buf) < need:
            try:
                buf.append(next(it))
            except StopIteration:
                done = True
        end = buf_start + len(buf)
        if start >= end:
            return
        stop = min(start + length, end)
        lo = max(buf_start, start - context)
        sel = buf[lo - buf_start : min(stop + context, end) - buf_start]
        yield Chunk(
            index, start, stop, start - lo, [n for n, _, _ in sel], [t for _, t, _ in sel], [f for _, _, f in sel]
        )
        # keep only the context the next chunk needs
        keep_from = max(buf_start, stop - context)
        buf = buf[keep_from - buf_start :]
        buf_start = keep_from
        start = stop
        index += 1
