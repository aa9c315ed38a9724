"""``fedpsyau`` command line: one verb per module, imported only when used.

Verbs: train, evaluate, report, predict, federate, data (summary, import-megc2019),
preprocess, analyse, evaluate-spotting.
Each verb module exposes ``add_arguments(parser)`` and ``run(args) -> int``; a verb
that reads an experiment config sets ``USES_CONFIG = True`` and then accepts the
ml_collections spelling ``--config=configs/x.py --config.train.epochs=30`` (and the
alias ``--set train.epochs=30``), checked strictly before anything runs.

Anticipated errors (``fedpsyau_jax.core.errors.UserError``: bad path, file, config,
override, name, checkpoint) print one line ``fedpsyau <verb>: error: <message>`` and
exit with code 2; ``--debug`` shows the traceback instead. Other exceptions are bugs
and keep their traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from fedpsyau_jax.version import package_version

# verb -> (module, one-line help). Modules are imported lazily so that e.g. the data
# verbs work without compiling anything and `fedpsyau --help` is instant.
VERBS: dict[str, tuple[str, str]] = {
    "train": ("fedpsyau_jax.cli.train", "train with a config (LOSO / k-fold protocols)"),
    "evaluate": ("fedpsyau_jax.cli.evaluate", "evaluate saved checkpoints of a run"),
    "report": ("fedpsyau_jax.cli.report", "Markdown report of finished runs (intervals, AU heads vs probe)"),
    "predict": ("fedpsyau_jax.cli.predict", "predict emotion and AUs of a video clip"),
    "federate": ("fedpsyau_jax.cli.federate", "federated training with a config"),
    "data": ("fedpsyau_jax.cli.data", "dataset tools (summary, import-megc2019)"),
    "preprocess": ("fedpsyau_jax.cli.preprocess", "video/frames -> cached model inputs"),
    "analyse": ("fedpsyau_jax.cli.analyse", "long video -> timeline of spotted, recognised expressions"),
    "evaluate-spotting": ("fedpsyau_jax.cli.evaluate_spotting", "MEGC spotting scores of analyse outputs"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fedpsyau", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"fedpsyau {package_version()}")
    sub = p.add_subparsers(dest="verb", metavar="VERB")
    for verb, (_, help_) in VERBS.items():
        sub.add_parser(verb, help=help_, add_help=False)
    return p


def _add_config_arguments(vp: argparse.ArgumentParser) -> None:
    vp.add_argument(
        "--config",
        required=True,
        metavar="FILE",
        help="config file with get_config() (configs/*.py); override entries "
        "with --config.section.key=value (repeatable)",
    )
    vp.add_argument(
        "--set",
        dest="set_overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="alias of --config.KEY=VALUE (same strict checking)",
    )


class _VerbFormatter(logging.Formatter):
    """``fedpsyau <verb>: warning: <message>`` for the project's log warnings."""

    def __init__(self, verb: str):
        super().__init__()
        self.verb = verb

    def format(self, record: logging.LogRecord) -> str:
        return f"fedpsyau {self.verb}: {record.levelname.lower()}: {record.getMessage()}"


def _console_warnings(verb: str) -> logging.Handler:
    """Show the library's warnings (truncated video, faceless onset ...) on stderr."""
    h = logging.StreamHandler(sys.stderr)
    h.setLevel(logging.WARNING)
    h.setFormatter(_VerbFormatter(verb))
    for name in ("data_pipelines", "fedpsyau_jax"):
        logging.getLogger(name).addHandler(h)
    return h


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--version":
        print(f"fedpsyau {package_version()}")
        return 0
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in VERBS:
        parser = build_parser()
        if argv and argv[0] not in ("-h", "--help"):
            parser.error(f"unknown verb {argv[0]!r}; choose from {', '.join(VERBS)}")
        parser.print_help()
        return 0 if argv else 2
    verb, rest = argv[0], argv[1:]
    debug = "--debug" in rest
    rest = [a for a in rest if a != "--debug"]
    module = importlib.import_module(VERBS[verb][0])
    vp = argparse.ArgumentParser(prog=f"fedpsyau {verb}", description=VERBS[verb][1])
    vp.add_argument("--debug", action="store_true", help="show the traceback of an error")
    uses_config = getattr(module, "USES_CONFIG", False)
    if uses_config:
        _add_config_arguments(vp)
    module.add_arguments(vp)
    from fedpsyau_jax.core.errors import UserError
    from fedpsyau_jax.compile_cache import enable_compilation_cache

    enable_compilation_cache()
    handler = _console_warnings(verb)
    try:
        if uses_config:
            from fedpsyau_jax.config_loading import split_config_flags

            rest, path, overrides = split_config_flags(rest)
            if path is not None:
                rest = ["--config", path, *rest]
        args = vp.parse_args(rest)
        if uses_config:
            args.overrides = overrides + list(args.set_overrides)
        return int(module.run(args) or 0)
    except UserError as e:
        if debug:
            raise
        msg = " ".join(ln.strip() for ln in str(e).splitlines() if ln.strip())  # always one line
        print(f"fedpsyau {verb}: error: {msg}", file=sys.stderr)
        return 2
    finally:
        for name in ("data_pipelines", "fedpsyau_jax"):
            logging.getLogger(name).removeHandler(handler)


if __name__ == "__main__":
    sys.exit(main())
