"""Errors a user can act on: bad paths, files, configs, names, checkpoints.

Every anticipated failure raises a subclass of ``UserError`` whose message names the
input and the problem in one line (``<what>: <problem>``). The command line prints it
as ``fedpsyau <verb>: error: <message>`` and exits with code 2 (the traceback only
with ``--debug``); the Python API raises the same types. Anything else is a bug and
keeps its traceback.

    UserError
      InputFileError     an input path is missing or unreadable (also FileNotFoundError)
      InputDataError     an input file is readable but its content is malformed
                         (bad annotation row, blank field, inconsistent release)
      OutputPathError    an output path cannot be written
      NameChoiceError    an unknown dataset / protocol / algorithm / option name

Further subclasses live next to the code that raises them:
``data_pipelines.sample_errors.SampleError`` (one unusable clip),
``data_pipelines.readers.sheet_table.SheetError`` (a label sheet),
``data_pipelines.megc2019_composite.CompositeError`` (the composite release),
``fedpsyau_jax.training.checkpoints.CheckpointError`` and
``fedpsyau_jax.config_loading.ConfigError``.
"""

from __future__ import annotations

import difflib
from typing import Iterable


class UserError(ValueError):
    """An anticipated error caused by the input; the message is one actionable line."""


class InputFileError(UserError, FileNotFoundError):
    """An input path is missing, unreadable or malformed (message names the file)."""


class InputDataError(UserError):
    """An input file's content is malformed (message names the file and line/row)."""


class OutputPathError(UserError):
    """An output path cannot be written (e.g. it is a file where a folder is needed)."""


class NameChoiceError(UserError):
    """An unknown dataset, protocol, algorithm or option name (message lists the choices)."""


def unknown_name(what: str, name: object, choices: Iterable[str]) -> NameChoiceError:
    """``<what> 'x': unknown name; choose from a, b, c (did you mean 'b'?)``."""
    choices = [str(c) for c in choices]
    close = difflib.get_close_matches(str(name), choices, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return NameChoiceError(f"{what} {name!r}: unknown name; choose from {', '.join(choices)}{hint}")


def check_output_dir(path, what: str = "--out") -> None:
    """Raise ``OutputPathError`` unless ``path`` is, or can be created as, a folder.

    Checks only (writes nothing): ``path`` itself and its first existing ancestor must
    be folders. Run it before any work so a bad output path fails at once.
    """
    from pathlib import Path

    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputPathError(f"{what} {p}: is a file, not a folder (give a folder path)")
    for parent in p.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputPathError(f"{what} {p}: {parent} is a file, so the folder cannot be created")
            break
