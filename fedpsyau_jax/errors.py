"""Errors a user can act on: bad paths, files, configs, names, checkpoints.

Every anticipated failure raises a subclass of ``UserError`` whose message names the
input and the problem in one line. The command line prints it as
``fedpsyau <verb>: error: <message>`` and exits with code 2 (the traceback only with
``--debug``); the Python API raises the same types. Anything else is a bug and keeps
its traceback.
"""
from __future__ import annotations


class UserError(ValueError):
    """An anticipated error caused by the input; the message is one actionable line."""


class InputFileError(UserError, FileNotFoundError):
    """An input path is missing, unreadable or malformed (message names the file)."""


class OutputPathError(UserError):
    """An output path cannot be written (e.g. it is a file where a folder is needed)."""


class NameChoiceError(UserError):
    """An unknown dataset, protocol, algorithm or option name (message lists the choices)."""
