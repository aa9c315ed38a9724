"""Why one sample cannot be turned into model inputs.

Every error here is *per sample*: the batch code (``records_to_samples``) catches
``SampleError``, writes ``str(err)`` into the skipped-samples manifest and goes on,
while genuine bugs (TypeError, shape asserts, ...) still stop the run. Each error
therefore says which file/sample it is about and what exactly is wrong.
"""

from __future__ import annotations

from fedpsyau_jax.core.errors import InputFileError, UserError


class SampleError(UserError):
    """Base class: this sample is unusable; the message names it and the reason.

    A ``UserError``: for a single clip (``fedpsyau preprocess --video``, ``predict``)
    the CLI prints it as one line and exits with code 2; dataset batches skip it."""


class UnreadableMediaError(SampleError):
    """A video file or frame image exists but cannot be decoded (or does not exist)."""


class MissingMediaError(UnreadableMediaError, InputFileError):
    """A video file, frame folder or frame image does not exist ("does not exist")."""


class MissingFrameError(SampleError):
    """A frame number the annotation asks for is not in the clip."""


class NoFaceError(SampleError):
    """The frontal face detector found no face."""


class MultipleFacesError(SampleError):
    """Several faces were found where exactly one was required."""


class UnusableSampleError(SampleError):
    """The annotation cannot give a meaningful onset→apex flow (e.g. onset == apex
    and no other first frame to fall back on)."""


class UnknownLabelError(SampleError):
    """The record's label is missing or outside the class list."""
