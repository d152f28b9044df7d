"""Checkpoints: one file per save, written atomically, loaded safely (weights_only: no code can run).

A run folder holds `checkpoints/step-0000100.pt` ...; the newest `keep` are kept, older ones pruned only
after a new one is safely on disk. `best.pt` (when a monitor picks one) sits beside them.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from vaemsgan import __version__
from vaemsgan.config import Config
from vaemsgan.errors import CheckpointError
from vaemsgan.utils.io import atomic_torch_save

FORMAT = "vaemsgan-checkpoint"
FORMAT_VERSION = 1
_STEP_FILE = re.compile(r"^step-(\d+)\.pt$")


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save_checkpoint(run_dir: str | Path, state: dict[str, Any], step: int, keep: int) -> Path:
    """Write `state` as checkpoints/step-N.pt atomically, then prune all but the newest `keep`."""
    state = {"format": FORMAT, "format_version": FORMAT_VERSION, "vaemsgan_version": __version__, **state}
    path = checkpoint_dir(run_dir) / f"step-{step:07d}.pt"
    atomic_torch_save(path, state)
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Step checkpoints of a run, oldest first."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_FILE.match(p.name))]
    return [p for _, p in sorted(found)]


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint file safely and check that it is one of ours."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder; give a checkpoint file or a run folder")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refused to load: it holds objects other than weights (it could run code); "
            f"{str(exc).splitlines()[0][:160]}"
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: not a readable checkpoint (corrupt or truncated?): {str(exc).splitlines()[0][:160]}"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a vaemsgan checkpoint")
    if state.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: written by a newer vaemsgan ({state.get('vaemsgan_version')}); "
            f"this is {__version__}: upgrade to load it"
        )
    return state


def resolve_checkpoint(path: str | Path, *, prefer_best: bool = False) -> Path:
    """A checkpoint file, or the newest valid checkpoint of a run folder (best.pt first if asked)."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file or run folder")
    if prefer_best and (path / "best.pt").is_file():
        return path / "best.pt"
    found = list_checkpoints(path)
    if not found:
        raise CheckpointError(
            f"{path}: no checkpoints in {checkpoint_dir(path)} (train with `vaemsgan train` first)"
        )
    return found[-1]


def load_latest_valid(run_dir: str | Path, warn: Any = print) -> dict[str, Any] | None:
    """Newest checkpoint that loads; corrupt or half-written ones are skipped with a warning."""
    for path in reversed(list_checkpoints(run_dir)):
        try:
            state = load_checkpoint(path)
            state["_path"] = str(path)
            return state
        except CheckpointError as exc:
            warn(f"warning: skipping {exc}")
    return None


def config_of(state: dict[str, Any]) -> Config:
    return Config.from_dict(state["config"])
