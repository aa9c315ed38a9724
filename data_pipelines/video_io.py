"""Reading grey frames from a video file or a folder of frame images.

Frame *numbers*: for a video file they are 0-based decode indices; for a frame
folder they are the trailing integer of each file name, because that is how the
datasets' sheets count (CASME II ``img46.jpg``/``reg_img46.jpg``, SAMM
``006_05562.jpg``, CAS(ME)^3 ``175.jpg``, SMIC ``image000123.bmp``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

from data_pipelines.sample_errors import MissingFrameError, MissingMediaError, UnreadableMediaError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"})
_TRAILING_INT = re.compile(r"(\d+)$")


def frame_number(path: Path | str) -> int | None:
    """The trailing integer of a file's stem (``reg_img46.jpg`` → 46), or None."""
    m = _TRAILING_INT.search(Path(path).stem)
    return int(m.group(1)) if m else None


def index_frames(paths: Iterable[Path | str], where: str) -> dict[int, Path]:
    """{frame number: path}, sorted by number; two files with one number is an error."""
    found: dict[int, Path] = {}
    for p in map(Path, paths):
        n = frame_number(p)
        if n is None:
            continue
        if n in found:
            raise UnreadableMediaError(f"{where}: frame number {n} is ambiguous ({found[n].name} and {p.name})")
        found[n] = p
    return dict(sorted(found.items()))


def frame_folder_index(folder: Path | str) -> dict[int, Path]:
    """Image files of a frame folder by frame number (non-images and number-less names ignored)."""
    d = Path(folder)
    if not d.is_dir():
        raise MissingMediaError(f"{d}: frame folder does not exist")
    files = [p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    idx = index_frames(files, str(d))
    if not idx:
        raise UnreadableMediaError(f"{d}: no numbered image frames ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return idx


def read_image_gray(path: Path | str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise MissingMediaError(f"{p}: frame file does not exist")
    img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise UnreadableMediaError(f"{p}: cannot decode image")
    return img


def iter_video_gray(path: Path | str) -> Iterator[tuple[int, np.ndarray]]:
    """(index, grey frame) for every frame of a video file, decoded in order.

    Sequential decoding rather than seeking: CAP_PROP_POS_FRAMES seeks are not
    frame-exact for inter-coded (H.264) streams. A video that ends before the frame
    count its container claims (truncated file, broken packets) logs a warning with
    both counts once it is fully decoded.
    """
    p = Path(path)
    if not p.is_file():
        raise MissingMediaError(f"{p}: video file does not exist")
    cap = cv2.VideoCapture(str(p))
    try:
        if not cap.isOpened():
            raise UnreadableMediaError(f"{p}: OpenCV cannot open this video")
        claimed = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        i = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            yield i, (cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame)
            i += 1
        if i == 0:
            raise UnreadableMediaError(
                f"{p}: video has no decodable frames" + (f" (the container claims {claimed})" if claimed > 0 else "")
            )
        if claimed > i:
            log.warning(
                "%s: truncated video: only %d decodable frames, the container claims %d; using frames 0..%d",
                p,
                i,
                claimed,
                i - 1,
            )
    finally:
        cap.release()


def read_video_gray(path: Path | str, numbers: Iterable[int] | None = None) -> dict[int, np.ndarray]:
    """Grey frames of a video by 0-based index: all of them, or just ``numbers``
    (decoding stops after the last one needed)."""
    want = None if numbers is None else set(int(n) for n in numbers)
    out: dict[int, np.ndarray] = {}
    last = max(want) if want else None
    n_seen = 0
    for i, frame in iter_video_gray(path):
        n_seen = i + 1
        if want is None or i in want:
            out[i] = frame
        if last is not None and i >= last:
            break
    if want is not None:
        missing = sorted(want - out.keys())
        if missing:
            raise MissingFrameError(
                f"{path}: frame(s) {_short(missing)} not in the video (it ended after {n_seen} frames)"
            )
    return out


def is_video_file(path: Path | str) -> bool:
    return Path(path).is_file() and Path(path).suffix.lower() not in IMAGE_SUFFIXES


class FrameSource:
    """Frames of one clip by number: a video file, a frame folder, or explicit files.

    A video is decoded once, whole, into memory (grey): micro-expression clips are a
    few hundred frames at most. Frame files are read on demand.
    """

    def __init__(self, path: Path | str | None = None, *, frame_paths: Iterable[Path | str] | None = None):
        if (path is None) == (frame_paths is None):
            raise ValueError("FrameSource needs exactly one of path or frame_paths")
        self._video: Path | None = None
        self._files: dict[int, Path] = {}
        self._decoded: dict[int, np.ndarray] = {}
        if frame_paths is not None:
            paths = [Path(p) for p in frame_paths]
            self.where = str(paths[0].parent) if paths else "<no frames>"
            self._files = index_frames(paths, self.where)
            if not self._files:
                raise UnreadableMediaError(f"{self.where}: no numbered frame files given")
        else:
            assert path is not None  # exactly one of path / frame_paths, checked above
            p = Path(path)
            self.where = str(p)
            if p.is_dir():
                self._files = frame_folder_index(p)
            elif p.is_file():
                self._video = p
                self._decoded = read_video_gray(p)
            else:
                raise MissingMediaError(f"{p}: does not exist (expected a video file or a folder of frame images)")

    def numbers(self) -> list[int]:
        """All frame numbers in temporal order."""
        return sorted(self._decoded) if self._video is not None else list(self._files)

    def path_of(self, number: int) -> Path | None:
        return self._files.get(number)

    def read(self, number: int) -> np.ndarray:
        if self._video is not None:
            if number not in self._decoded:
                raise MissingFrameError(
                    f"{self.where}: frame {number} not in the video (frames 0..{len(self._decoded) - 1})"
                )
            return self._decoded[number]
        if number not in self._files:
            nums = list(self._files)
            raise MissingFrameError(
                f"{self.where}: no file for frame {number} (frames {nums[0]}..{nums[-1]}, {len(nums)} files)"
            )
        return read_image_gray(self._files[number])


def _short(nums: list[int]) -> str:
    return ", ".join(map(str, nums[:5])) + (", ..." if len(nums) > 5 else "")
