"""``fedpsyau`` command line: one verb per module, imported only when used.

Verbs: train, evaluate, predict, federate, data (summary), preprocess.
Each verb module exposes ``add_arguments(parser)`` and ``run(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# verb -> (module, one-line help). Modules are imported lazily so that e.g. the data
# verbs work without compiling anything and `fedpsyau --help` is instant.
VERBS: dict[str, tuple[str, str]] = {
    "train": ("fedpsyau_jax.cli_train", "train with a config (LOSO / k-fold protocols)"),
    "evaluate": ("fedpsyau_jax.cli_evaluate", "evaluate saved checkpoints of a run"),
    "predict": ("fedpsyau_jax.cli_predict", "predict emotion and AUs of a video clip"),
    "federate": ("fedpsyau_jax.cli_federate", "federated training with a config"),
    "data": ("data_pipelines.cli_data", "dataset tools (summary)"),
    "preprocess": ("data_pipelines.cli_preprocess", "video/frames -> cached model inputs"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fedpsyau", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="verb", metavar="VERB")
    for verb, (_, help_) in VERBS.items():
        sub.add_parser(verb, help=help_, add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in VERBS:
        parser = build_parser()
        if argv and argv[0] not in ("-h", "--help"):
            parser.error(f"unknown verb {argv[0]!r}; choose from {', '.join(VERBS)}")
        parser.print_help()
        return 0 if argv else 2
    verb, rest = argv[0], argv[1:]
    module = importlib.import_module(VERBS[verb][0])
    vp = argparse.ArgumentParser(prog=f"fedpsyau {verb}", description=VERBS[verb][1])
    module.add_arguments(vp)
    args = vp.parse_args(rest)
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
