"""Entry point of the `facedancer` command: sub-command dispatch, logging, and exit codes.

Exit codes: 0 success, 1 a user error (bad file, bad input; one line on stderr), 2 bad usage,
130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from facedancer.cli import align, demo, evaluate, ifsr_margins, info, shard, swap, train
from facedancer.cli.common import apply_device

SUBCOMMANDS = (demo, info, align, shard, train, ifsr_margins, swap, evaluate)
EXIT_USER_ERROR = 1
EXIT_INTERRUPTED = 130

log = logging.getLogger("facedancer")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facedancer", description="FaceDancer face swapping (TensorFlow/Keras 3).")
    add_verbosity_flags(parser, defaults=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    for subparser in {id(p): p for p in sub.choices.values()}.values():
        add_verbosity_flags(subparser, defaults=False)
    return parser


def add_verbosity_flags(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """-v/--verbose and -q/--quiet on the top parser (with defaults) and on every sub-command (without, so a
    flag given before the sub-command is not reset by it): `facedancer -v swap …` = `facedancer swap … -v`."""
    default = {} if defaults else {"default": argparse.SUPPRESS}
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-v", "--verbose", action="store_true", help="log debug messages (also TensorFlow's)", **default)
    group.add_argument(
        "-q", "--quiet", action="store_true", help="warnings and errors only, no progress bars", **default
    )


def setup_logging(verbose: bool, quiet: bool = False) -> None:
    from facedancer.progress import set_quiet

    set_quiet(quiet)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def run_command(func, args: argparse.Namespace) -> int:
    """Run a parsed sub-command; user errors become one line on stderr and exit code 1."""
    from facedancer.errors import FaceDancerError

    try:
        return int(func(args) or 0)
    except FaceDancerError as exc:
        log.error("%s", exc)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        log.error("interrupted")
        return EXIT_INTERRUPTED


def quiet_tensorflow_import() -> None:
    """Import TensorFlow with its C++ start-up banner (oneDNN, absl) kept off the user's terminal."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose and args.quiet:
        parser.error("-v/--verbose and -q/--quiet exclude each other")
    setup_logging(args.verbose, args.quiet)
    apply_device(args)
    if not args.verbose:
        quiet_tensorflow_import()
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
