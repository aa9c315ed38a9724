"""One annotated expression of a long video (spotting ground truth)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class LongVideoAnnotation:
    """``video``: the id shared by the annotation and the video's folder name
    (CAS(ME)^2 ``15_0101``, SAMM Long Videos ``006_1``); frames are the release's frame
    numbers (those in the frame file names); ``offset`` is the apex when the release
    codes no offset (CAS(ME)^2 writes 0); ``kind`` "micro" or "macro"."""

    dataset: str
    video: str
    subject: str
    onset: int
    apex: int | None
    offset: int
    kind: str
    emotion: str
    aus: str
    name: str
