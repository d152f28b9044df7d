"""Entry point: parse, dispatch, and turn user errors into one clear line and a non-zero exit."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

from vaemsgan import limits
from vaemsgan.cli import commands
from vaemsgan.cli.options import add_range_to_help
from vaemsgan.cli.paths import missing_dirs, refuse_nested, remove_empty
from vaemsgan.errors import VaemsganError
from vaemsgan.utils.lock import folder_lock
from vaemsgan.version import __version__


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
    add_range_to_help(p)
    return p


# Per command: the options naming inputs that its --out must neither be inside nor contain.
INPUT_OPTIONS: dict[str, tuple[str, ...]] = {
    "train": ("data",),
    "evaluate": ("real", "generated"),
    "reconstruct": ("input",),
    "reproduce": ("data",),
    "generate": ("from_real",),
}


LOCKED_OUTPUTS = {
    "generate": "output folder",
    "evaluate": "report folder",
    "reconstruct": "output folder",
    "demo": "demo folder",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a bad option (one line already printed, 2), --help or --version (0)
        return exc.code if isinstance(exc.code, int) else 2
    if args.command is None:
        parser.print_help()
        return 2
    # Folders this command may create for its output: a failure must not leave them behind, empty.
    out = getattr(args, "out", None)
    created = missing_dirs(out) if out else []
    rc = 1
    try:
        rc = _run(args)
    finally:
        if rc != 0:
            remove_empty(created)
    return rc


def _run(args: argparse.Namespace) -> int:
    """Run the command; user errors become one line and an exit code."""
    try:
        out = getattr(args, "out", None)
        if out:
            inputs = {
                f"--{a.replace('_', '-')}": getattr(args, a, None)
                for a in INPUT_OPTIONS.get(args.command, ())
            }
            refuse_nested("--out", out, inputs)
        # One owner per output folder (`train` locks its run folder itself, rank 0 only; `reproduce` locks
        # each run folder, since parallel workers share OUT).
        lock = (
            folder_lock(out, LOCKED_OUTPUTS[args.command])
            if out and args.command in LOCKED_OUTPUTS
            else contextlib.nullcontext()
        )
        with lock, limits.raised(getattr(args, "max_image_mb", None), getattr(args, "max_config_kb", None)):
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
    except RuntimeError as exc:
        # torch reports a failed allocation as a RuntimeError (CPU) or OutOfMemoryError (CUDA): the
        # machine's limit, not a bug. Requests known to be too large are refused before this.
        text = str(exc)
        if args.debug or not ("can't allocate memory" in text or "out of memory" in text.lower()):
            raise
        print(
            f"vaemsgan: error: out of memory ({text.splitlines()[0][:120]}): lower --batch-size, "
            "--resolution or the number of images",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
