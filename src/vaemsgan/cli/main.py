"""Entry point: parse, dispatch, and turn user errors into one clear line and a non-zero exit."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from vaemsgan import __version__
from vaemsgan.cli import commands
from vaemsgan.errors import VaemsganError


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad option in one line (its usage dump hides the actual problem)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"vaemsgan: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="vaemsgan", description="VAE-MSGAN: class-correct synthetic images for small labelled sets."
    )
    p.add_argument("--version", action="version", version=f"vaemsgan {__version__}")
    p.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for register in commands.REGISTRY:
        register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except VaemsganError as exc:
        if args.debug:
            raise
        # One line whatever the message holds (a YAML key or a file name may contain a newline).
        print(f"vaemsgan: error: {' '.join(str(exc).splitlines())}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # output piped into `head` and closed
        return 0
    except KeyboardInterrupt:
        print("vaemsgan: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        # Disk full, read-only or vanished folders mid-run: the environment, not a bug; one line.
        if args.debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"vaemsgan: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except MemoryError:
        if args.debug:
            raise
        print("vaemsgan: error: out of memory: lower --batch-size or --resolution", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
