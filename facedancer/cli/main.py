"""Entry point of the `facedancer` command: sub-command dispatch, logging, and exit codes.

Exit codes: 0 success, 1 a user error (bad file, bad input; one line on stderr), 2 bad usage,
130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence

from facedancer.cli import align, demo, evaluate, ifsr_margins, info, prepare, serve, shard, swap, train
from facedancer.cli.common import apply_device, apply_max_pixels

SUBCOMMANDS = (demo, info, align, shard, prepare, train, ifsr_margins, swap, serve, evaluate)
EXIT_USER_ERROR = 1
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 128 + signal.SIGTERM

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


class Terminated(KeyboardInterrupt):
    """SIGTERM raised as an exception in the main thread, so `finally` blocks remove temporary files."""


def _raise_terminated(signum, frame):
    raise Terminated()


def os_error_line(exc: OSError) -> str:
    """One line for an OSError a user can fix (permissions, a file where a folder belongs, a full disk)."""
    where = exc.filename if exc.filename is not None else "a file"
    reason = (exc.strerror or str(exc)).lower()
    fixes = {
        PermissionError: "check its permissions or choose another path",
        IsADirectoryError: "it is a folder; give a file path",
        NotADirectoryError: "a file is in the way where a folder is expected; choose another path",
        FileExistsError: "it already exists; remove it or choose another path",
        FileNotFoundError: "check the path",
    }
    fix = next((text for kind, text in fixes.items() if isinstance(exc, kind)), "check the path and free space")
    return f"{where}: {reason}; {fix}"


def run_command(func, args: argparse.Namespace) -> int:
    """Run a parsed sub-command; user errors become one line on stderr and exit code 1."""
    from facedancer.errors import FaceDancerError

    previous = signal.signal(signal.SIGTERM, _raise_terminated) if _in_main_thread() else None
    try:
        return int(func(args) or 0)
    except FaceDancerError as exc:
        log.error("%s", str(exc).replace("\n", " "))
        return EXIT_USER_ERROR
    except OSError as exc:
        log.error("%s", os_error_line(exc))
        return EXIT_USER_ERROR
    except Terminated:
        log.error("terminated (SIGTERM); partial outputs removed")
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        log.error("interrupted")
        return EXIT_INTERRUPTED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def explicit_options(argv: Sequence[str] | None) -> set[str]:
    """Destinations of the flags the user typed (not defaults): they override a resumed run's options."""
    parser = build_parser()
    parsers = [parser]
    while parsers:
        current = parsers.pop()
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
            elif action.dest != "help":
                action.default = argparse.SUPPRESS
        current._defaults.clear()
    given, _ = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))  # pipeline flags: prepare's
    return set(vars(given)) - {"command"}


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
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        sub.choices.get(getattr(args, "command", None), parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    args.pipeline_args = unknown
    return args


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(argv)
    if args.verbose and args.quiet:
        parser.error("-v/--verbose and -q/--quiet exclude each other")
    args.explicit = explicit_options(argv)
    setup_logging(args.verbose, args.quiet)
    apply_device(args)
    apply_max_pixels(args)
    if not args.verbose:
        quiet_tensorflow_import()
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
