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

from facedancer.cli import align, demo, evaluate, ifsr_margins, info, prepare, shard, swap, train
from facedancer.cli.common import apply_device

SUBCOMMANDS = (demo, info, align, shard, prepare, train, ifsr_margins, swap, evaluate)
EXIT_USER_ERROR = 1
EXIT_INTERRUPTED = 130

log = logging.getLogger("facedancer")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facedancer", description="FaceDancer face swapping (TensorFlow/Keras 3).")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return parser


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; flags unknown to a command that takes pipeline options (prepare) go to it."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "pipeline_args_allowed", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.pipeline_args = unknown
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    apply_device(args)
    if not args.verbose:
        quiet_tensorflow_import()
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
