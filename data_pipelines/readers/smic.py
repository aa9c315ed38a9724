"""SMIC-HS reader: ``HS/<subject>/micro/<negative|positive|surprise>/<clip>/image<NNNNNN>.bmp``.

SMIC ships no label sheet: the class is the folder name, there is no apex
annotation (apex = the middle frame, the MEGC convention) and no AU coding.
"""

from __future__ import annotations

from pathlib import Path

from data_pipelines.clip_record import ClipRecord
from data_pipelines.label_maps import map_emotion
from data_pipelines.readers import layout
from fedpsyau_jax.core.errors import InputDataError, InputFileError

FPS = 100.0  # SMIC-HS high-speed camera
CLASS_DIRS = ("negative", "positive", "surprise")


def read_smic(root: Path, scheme: str = "megc3") -> list[ClipRecord]:
    """One record per clip folder; ``name`` is ``<subject>_<clip>`` (e.g. ``s1_s1_ne_01``).

    ``root`` is the release root holding ``HS/`` (searched a few levels down) or the
    ``HS`` folder itself. onset/offset are the first/last frame numbers; apex the
    middle frame of the sorted list; ``frame_paths`` lists every frame in order.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputFileError(f"SMIC: root {root} is not a folder")
    hs = root if root.name == "HS" else (layout.find_frames_base(root, "HS") or root) / "HS"
    if not hs.is_dir():
        raise InputFileError(f"SMIC: no HS/ folder below {root}")
    records = []
    for subj_dir in sorted(d for d in hs.iterdir() if d.is_dir()):
        micro = subj_dir / "micro"
        if not micro.is_dir():
            continue
        for cls_dir in sorted(d for d in micro.iterdir() if d.is_dir()):
            label = map_emotion("smic", cls_dir.name, scheme)  # unknown folder -> error
            for clip_dir in sorted(d for d in cls_dir.iterdir() if d.is_dir()):
                frames = layout.sorted_frames(clip_dir)
                if len(frames) < 2:
                    raise InputDataError(
                        f"SMIC: clip {clip_dir} has {len(frames)} frame(s); need at least onset and apex"
                    )
                nums = [layout.frame_number(f) for f in frames]
                records.append(
                    ClipRecord(
                        dataset="smic",
                        subject=subj_dir.name,
                        clip=clip_dir.name,
                        name=f"{subj_dir.name}_{clip_dir.name}",
                        onset=nums[0],
                        apex=nums[len(nums) // 2],
                        offset=nums[-1],
                        aus=frozenset(),
                        emotion=cls_dir.name,
                        label=label,
                        frame_dir=clip_dir,
                        frame_paths=tuple(frames),
                        fps=FPS,
                    )
                )
    if not records:
        raise InputDataError(f"SMIC: no clips found under {hs} (expected <subject>/micro/<class>/<clip>/)")
    from data_pipelines.readers import check_records

    return check_records(records, hs)
