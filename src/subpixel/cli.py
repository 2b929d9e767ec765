"""The ``subpixel`` command line: ``main(argv) -> int``, testable in-process.

Sub-commands register themselves in :data:`COMMANDS`; each module is imported only when its
command runs, so ``subpixel --help`` stays fast and needs no optional dependency.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from subpixel import __version__

__all__ = ["COMMANDS", "CliError", "main"]


class CliError(Exception):
    """A failure to report as one line on stderr with a non-zero exit status."""


@dataclass(frozen=True)
class Command:
    """A sub-command: ``module`` provides ``add_arguments(parser)`` and ``run(args) -> int``."""

    name: str
    module: str
    help: str


COMMANDS: tuple[Command, ...] = (
    Command("train", "subpixel.commands.train", "train a super-resolution model"),
    Command("eval", "subpixel.commands.eval", "evaluate a model by the SR protocol"),
    Command("import-opencv", "subpixel.commands.import_opencv", "import an OpenCV .pb model"),
    Command("export", "subpixel.commands.export", "export a model to ONNX or TFLite"),
    Command("experiment", "subpixel.commands.experiment", "sub-pixel vs transposed, measured"),
    Command("upscale", "subpixel.commands.upscale", "upscale images, folders and videos"),
)

_EPILOG = """\
examples:
  subpixel --version
  python -m subpixel --help

Channel orders, layers and the Python API: see README.md.
"""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per command in :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="subpixel",
        description="Sub-pixel convolution and real-time super-resolution (ESPCN).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"subpixel {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show full tracebacks instead of one-line errors"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in COMMANDS:
        module = importlib.import_module(cmd.module)
        p = sub.add_parser(
            cmd.name,
            help=cmd.help,
            description=(module.__doc__ or cmd.help).strip(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # --help, --version and usage errors
        return int(exc.code or 0)
    args._argv = list(sys.argv[1:] if argv is None else argv)
    run: Callable[[argparse.Namespace], int] | None = getattr(args, "_run", None)
    if run is None:
        parser.print_help()
        return 0
    try:
        return run(args)
    except KeyboardInterrupt:
        print("subpixel: interrupted", file=sys.stderr)
        return 130
    except (CliError, ValueError, TypeError, OSError) as exc:
        if args.debug:
            raise
        print(f"subpixel {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
