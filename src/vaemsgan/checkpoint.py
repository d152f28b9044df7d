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

from vaemsgan.config import Config
from vaemsgan.errors import CheckpointError, ConfigError
from vaemsgan.utils.io import atomic_torch_save, check_regular
from vaemsgan.version import __version__

FORMAT = "vaemsgan-checkpoint"
FORMAT_VERSION = 1
_STEP_FILE = re.compile(r"^step-(\d+)\.pt$")


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save_checkpoint(run_dir: str | Path, state: dict[str, Any], step: int, keep: int) -> Path:
    """Write `state` as checkpoints/step-N.pt atomically, then prune all but the newest `keep`.

    A state with NaN/Inf weights is refused (CheckpointError) before anything is written. Pruning runs
    only after the new file is on disk, so a failed write (disk full) leaves every older one intact.
    """
    bad = non_finite_tensors(state)
    if bad:
        raise CheckpointError(
            f"refusing to write a checkpoint at step {step}: NaN/Inf values in {', '.join(bad[:3])}"
            + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        )
    state = {"format": FORMAT, "format_version": FORMAT_VERSION, "vaemsgan_version": __version__, **state}
    path = checkpoint_dir(run_dir) / f"step-{step:07d}.pt"
    atomic_torch_save(path, state)
    for old in list_checkpoints(run_dir)[:-keep]:
        if old != path:
            old.unlink(missing_ok=True)
    # Temp files of writes killed half-way (SIGKILL, power cut); ours is renamed by now.
    for stale in checkpoint_dir(run_dir).glob(".step-*.pt.*.tmp"):
        stale.unlink(missing_ok=True)
    return path


def save_state(path: str | Path, state: dict[str, Any]) -> Path:
    """Write `state` as a checkpoint file at `path` atomically (best.pt, snapshots; never NaN, never pruned)."""
    path = Path(path)
    bad = non_finite_tensors(state)
    if bad:
        raise CheckpointError(f"refusing to write {path.name}: NaN/Inf values in {', '.join(bad[:3])}")
    state = {"format": FORMAT, "format_version": FORMAT_VERSION, "vaemsgan_version": __version__, **state}
    return atomic_torch_save(path, state)


def save_best(run_dir: str | Path, state: dict[str, Any]) -> Path:
    """RUN/best.pt: the monitor's pick."""
    return save_state(Path(run_dir) / "best.pt", state)


def snapshot_path(run_dir: str | Path, minutes: float) -> Path:
    """RUN/snapshots/cpu-<M>min.pt: the state after M minutes of training CPU time."""
    return Path(run_dir) / "snapshots" / f"cpu-{minutes:g}min.pt"


def non_finite_tensors(state: Any, prefix: str = "") -> list[str]:
    """Names of the floating-point tensors in a (nested) state dict that hold NaN or Inf."""
    if isinstance(state, torch.Tensor):
        if state.is_floating_point() and not bool(torch.isfinite(state).all()):
            return [prefix or "tensor"]
        return []
    if isinstance(state, dict):
        if prefix == "rng":
            return []
        return [
            n for k, v in state.items() for n in non_finite_tensors(v, f"{prefix}.{k}" if prefix else str(k))
        ]
    if isinstance(state, (list, tuple)):
        return [n for i, v in enumerate(state) for n in non_finite_tensors(v, f"{prefix}[{i}]")]
    return []


def _step_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of a run's step checkpoints, oldest first."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    return sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_FILE.match(p.name)))


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Step checkpoints of a run, oldest first."""
    return [p for _, p in _step_checkpoints(run_dir)]


def discard_checkpoints_after(run_dir: str | Path, step: int) -> list[Path]:
    """Delete the step checkpoints past `step`: after a rollback to `step` they hold the abandoned
    trajectory, and a resume (which takes the highest step) must continue the rolled-back run instead."""
    gone = [p for s, p in _step_checkpoints(run_dir) if s > step]
    for p in gone:
        p.unlink(missing_ok=True)
    return gone


def _first_line(exc: BaseException, limit: int = 160) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return (lines[0][:limit] if lines else type(exc).__name__).rstrip(".:")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint file safely and check that it is one of ours.

    `weights_only=True` unpickles tensors and plain containers only: a crafted file whose pickle would
    call a function (os.system, ...) is refused before anything runs.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder; give a checkpoint file or a run folder")
    try:
        size = check_regular(path).st_size  # a FIFO or device would block or never end: not opened
        is_zip = zipfile.is_zipfile(path)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint ({exc.strerror or exc})") from exc
    if size == 0:
        raise CheckpointError(f"{path}: empty file (a checkpoint whose write was interrupted?)")
    if not is_zip:
        # torch.save has written zip archives since 1.6; a truncated one loses its central directory.
        raise CheckpointError(
            f"{path}: not a vaemsgan checkpoint (not a PyTorch zip archive; truncated or another kind of file)"
        )
    try:
        # torch does not check the archive's CRCs: flipped bits in the weights would load silently.
        with zipfile.ZipFile(path) as zf:
            damaged = zf.testzip()
    except Exception as exc:  # BadZipFile, zlib.error, OSError, ...
        raise CheckpointError(
            f"{path}: not a readable checkpoint (corrupt archive: {_first_line(exc)})"
        ) from exc
    if damaged is not None:
        raise CheckpointError(
            f"{path}: corrupt checkpoint (checksum mismatch in {damaged}); it cannot be used"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refused to load: it holds Python objects other than tensors and plain data "
            f"(loading it could run code; vaemsgan checkpoints never do): {_unsafe_global(exc)}"
        ) from exc
    except Exception as exc:  # torch raises RuntimeError, EOFError, ValueError, ... for damaged archives
        raise CheckpointError(
            f"{path}: not a readable checkpoint (corrupt or truncated): {_first_line(exc)}"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a vaemsgan checkpoint (a PyTorch file of another program?)")
    version = state.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: written by a newer vaemsgan ({state.get('vaemsgan_version')}, checkpoint format "
            f"{version}); this is vaemsgan {__version__} (format {FORMAT_VERSION}): upgrade to load it"
        )
    missing = [k for k in ("config", "class_names", "models", "step") if k not in state]
    if missing:
        raise CheckpointError(f"{path}: incomplete vaemsgan checkpoint (missing {', '.join(missing)})")
    return state


def _unsafe_global(exc: BaseException) -> str:
    """The offending global from torch's long weights-only message, e.g. 'posix.system'."""
    m = re.search(r"GLOBAL ([\w.]+)", str(exc))
    return f"it references {m.group(1)}" if m else "it holds an object torch refuses to unpickle safely"


def resolve_checkpoint(path: str | Path, *, prefer_best: bool = False) -> Path:
    """A checkpoint file, or the newest valid checkpoint of a run folder (best.pt first if asked)."""
    path = Path(path)
    if path.exists() and not path.is_dir():  # a file (or a FIFO, device: load_checkpoint refuses them)
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
    """The run's config; CheckpointError if this vaemsgan does not understand it (other version)."""
    raw = state.get("config")
    if not isinstance(raw, dict):
        raise CheckpointError("checkpoint holds no config")
    try:
        return Config.from_dict(raw)
    except ConfigError as exc:
        raise CheckpointError(
            f"checkpoint config (written by vaemsgan {state.get('vaemsgan_version', '?')}) is not valid for "
            f"vaemsgan {__version__}: {exc}"
        ) from exc


def mismatch_reason(exc: BaseException) -> str:
    """The informative line of a load_state_dict error: 'size mismatch for ...', 'Missing key(s) ...'."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith(("size mismatch", "Missing key", "Unexpected key")):
            return ln[:200]
    return lines[0][:200] if lines else type(exc).__name__
