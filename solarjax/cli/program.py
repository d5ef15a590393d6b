"""The `solarjax` program: the parser built from the command modules, and `main`, which runs a command with
the program's logging, compilation cache and level, config overrides and one-line errors."""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
from collections.abc import Sequence

from solarjax.cli import data, demo, generate, index, physics, search, serve, train
from solarjax.cli.logs import configure_logging

_DESCRIPTION = """\
solarjax: generate solar active regions with the physical properties you ask for, and retrieve the
real SDO/HMI SHARP observations that match them.

Pipeline: SHARP Br patches -> GAN -> latent directions of physical quantities (SVM normals)
-> steered generated patch -> SimSiam embedding -> nearest real SHARP patches (ScaNN).
"""

# The command modules in the order `solarjax --help` lists their commands.
_COMMANDS = (physics, data, train, generate, index, search, serve, demo)

# The argparse destinations of the nested command words (`solarjax data build` -> data_command).
_NESTED_COMMANDS = ("data_command", "model", "steer_command", "index_command")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `solarjax CMD: error: MESSAGE (see solarjax CMD --help)`, exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from solarjax import __version__

    parser = _Parser(prog="solarjax", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"solarjax {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more progress on stderr: -v solarjax's debug lines, -vv also other libraries' INFO "
        "(orbax, absl, jax); allowed anywhere on the line (default: solarjax's progress lines)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="count",
        default=0,
        help="less on stderr: -q only warnings and errors, -qq only errors (results still go to stdout)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for commands in _COMMANDS:
        commands.add_commands(subparsers)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that describe bad input or missing artefacts (one line, exit 2), not bugs."""
    from solarjax.data.download import DownloadError
    from solarjax.data.fits import FitsReadError
    from solarjax.data.jsoc import JsocError
    from solarjax.stages import OutdirError

    return (OSError, ValueError, FitsReadError, OutdirError, JsocError, DownloadError)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command; bad input or a missing artefact is one line on stderr and exit 2
    (SOLARJAX_TRACEBACK=1 shows the traceback instead)."""
    _use_compilation_cache()
    prefer_fast_cpu_compilation()
    argv, config_overrides = _split_config_overrides(sys.argv[1:] if argv is None else list(argv))
    args = build_parser().parse_args(_verbosity_first(argv))
    configure_logging(args.verbose - args.quiet)
    if config_overrides and getattr(args, "func", None) is not train.run_train:
        print(
            f"solarjax {args.command}: error: --config.{config_overrides[0]}: config overrides are for "
            "`solarjax train` (see solarjax train gan --help)",
            file=sys.stderr,
        )
        return 2
    args.config_overrides = config_overrides
    try:
        return args.func(args)
    except _user_errors() as err:
        if os.environ.get("SOLARJAX_TRACEBACK"):
            raise
        words = [args.command, *(str(getattr(args, name)) for name in _NESTED_COMMANDS if getattr(args, name, None))]
        print(f"solarjax {' '.join(words)}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2


def _use_compilation_cache() -> None:
    """With SOLARJAX_COMPILATION_CACHE=1, XLA programs persist across commands in $XDG_CACHE_HOME/solarjax/jax
    (or ~/.cache/...), so a second `steer`/`search`/`sample` skips most compilation. Off by default: XLA:CPU
    has aborted the whole process while serialising a large program for the cache. JAX_COMPILATION_CACHE_DIR,
    when set, is JAX's own switch and is left as it is."""
    if "JAX_COMPILATION_CACHE_DIR" in os.environ or "jax" in sys.modules:
        return
    if os.environ.get("SOLARJAX_COMPILATION_CACHE", "").strip().lower() not in ("1", "true", "yes", "on"):
        return
    cache = pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache") / "solarjax" / "jax"
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(cache)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")


CPU_COMPILE_LEVEL_FLAG = "--xla_backend_optimization_level=2"
"""XLA's LLVM optimisation level 2 instead of its default 3: on a CPU the programs compile faster and run as fast
(figures: benchmarks/README.md, `python -m benchmarks.compile_level`)."""

_ACCELERATOR_PLUGINS = ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm60_plugin", "jax_rocm7_plugin", "libtpu")


def prefer_fast_cpu_compilation() -> None:
    """Adds `CPU_COMPILE_LEVEL_FLAG` to XLA_FLAGS unless they set a level already or an accelerator plugin is
    installed (its kernels were not measured at level 2). XLA reads its flags when JAX starts its first backend, so
    this is for the start of a process."""
    import importlib.util

    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_backend_optimization_level" in flags:
        return
    if any(importlib.util.find_spec(name) is not None for name in _ACCELERATOR_PLUGINS):
        return
    os.environ["XLA_FLAGS"] = f"{flags} {CPU_COMPILE_LEVEL_FLAG}".strip()


_VERBOSITY_FLAGS = frozenset({"-v", "-vv", "-vvv", "--verbose", "-q", "-qq", "--quiet"})


def _verbosity_first(argv: list[str]) -> list[str]:
    """argv with its -v/-q flags moved before the command, so `solarjax demo -q` works as `solarjax -q demo`."""
    end = argv.index("--") if "--" in argv else len(argv)
    flags = [a for a in argv[:end] if a in _VERBOSITY_FLAGS]
    return flags + [a for a in argv[:end] if a not in _VERBOSITY_FLAGS] + argv[end:]


def _split_config_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
    """argv without its ``--config.FIELD=VALUE`` / ``--config.FIELD VALUE`` items, and those as FIELD=VALUE."""
    rest, overrides = [], []
    items = iter(argv)
    for item in items:
        if item.startswith("--config."):
            field = item[len("--config.") :]
            overrides.append(field if "=" in field else f"{field}={next(items, '')}")
        else:
            rest.append(item)
    return rest, overrides
