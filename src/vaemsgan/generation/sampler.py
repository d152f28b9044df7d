"""Sampling a trained model: `generate` writes DIR/<class>/<index>.png plus a manifest.

Each image's latent depends only on (seed, class, index), so a rerun after an interruption writes
exactly the missing files and the result is identical to an uninterrupted run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vaemsgan.errors import ConfigError, OutputExistsError
from vaemsgan.inference import LoadedModel, latents, load_model, reconstruct_images
from vaemsgan.utils.images import to_uint8
from vaemsgan.utils.io import atomic_write_json, prepare_output_dir, safe_names, save_png
from vaemsgan.utils.progress import progress_bar

MANIFEST = "manifest.json"
PARTIAL = ".generate-partial.json"

# Re-exported: the inference primitives used to live here.
__all__ = [
    "MANIFEST",
    "LoadedModel",
    "finish_output",
    "generate_folder",
    "interpolation_grid",
    "latents",
    "load_model",
    "manifest_header",
    "model_header",
    "open_output",
    "reconstruct_images",
    "slerp",
    "wanted_classes",
    "write_batch",
]


def _read_settings(path: Path, keys: Any) -> dict[str, Any] | None:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return {k: d.get(k) for k in keys} if isinstance(d, dict) else None


def compiled_runner(generator: nn.Module, batch_size: int) -> Any:
    """generator(z, y) through torch.compile, every batch padded to `batch_size` so that one compiled graph
    serves them all (exact: an eval-mode generator maps each latent on its own). Falls back to the eager
    generator, with a note, where compiling fails (no C++ compiler, unsupported platform)."""
    compiled = torch.compile(generator, dynamic=False)
    state = {"failed": False}

    def run(z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        n = z.shape[0]
        if state["failed"] or n > batch_size:
            return generator(z, y)
        if n < batch_size:
            z = torch.cat([z, z.new_zeros(batch_size - n, z.shape[1])])
            y = None if y is None else torch.cat([y, y.new_zeros(batch_size - n)])
        try:
            return compiled(z, y)[:n]
        except Exception as exc:  # inductor needs a working C++ toolchain on CPU
            print(f"note: torch.compile failed ({str(exc).splitlines()[0][:120]}); generating without it")
            state["failed"] = True
            return generator(z[:n], None if y is None else y[:n])

    return run


def wanted_classes(model: LoadedModel, classes: list[str] | None) -> list[str]:
    """The classes to generate (all by default); an unknown name is a one-line error."""
    names = model.class_names
    wanted = list(classes or names)
    unknown = [c for c in wanted if c not in names]
    if unknown:
        raise ConfigError(f"--classes: unknown class {unknown[0]!r} (the model knows: {', '.join(names)})")
    return wanted


def manifest_header(
    model: LoadedModel,
    seed: int,
    truncation: float | None,
    per_class: int,
    wanted: list[str],
    folders: dict[str, str],
) -> dict[str, Any]:
    """What every manifest records besides its files: the checkpoint, the sampling settings, the layout."""
    return {
        **model_header(model),
        "seed": seed,
        "truncation": truncation,
        "per_class": per_class,
        "classes": list(wanted),
        "class_folders": {n: folders[n] for n in wanted},
    }


def model_header(model: LoadedModel) -> dict[str, Any]:
    """The manifest fields that name the model: its checkpoint (path and SHA-256), step and image format."""
    return {
        "checkpoint": str(model.checkpoint),
        "checkpoint_sha256": model.checkpoint_sha256,
        "step": model.step,
        "resolution": model.cfg.data.resolution,
        "channels": model.cfg.data.channels,
        "crop": model.cfg.data.crop,  # of the real images, before resizing: evaluate crops them the same
    }


@torch.inference_mode()
def generate_folder(
    model: LoadedModel,
    out: str | Path,
    per_class: int,
    seed: int = 0,
    truncation: float | None = None,
    batch_size: int = 256,
    classes: list[str] | None = None,
    force: bool = False,
    resume: bool = False,
    progress: bool = True,
    compile: bool = False,
) -> dict[str, Any]:
    """Write `per_class` images per class into out/<class>/<index>.png and out/manifest.json.

    `compile`: run the generator through torch.compile (measured 1.5x faster on CPU at 32x32, see
    docs/BENCHMARKS.md; ~30 s to compile, so worth it for large batches of images only).
    """
    if per_class < 1:
        raise ConfigError(f"--per-class must be at least 1, got {per_class}")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    out = Path(out)
    names = model.class_names
    wanted = wanted_classes(model, classes)
    settings = {"checkpoint_sha256": model.checkpoint_sha256, "seed": seed, "truncation": truncation}
    open_output(out, settings, force=force, resume=resume)
    files: list[dict[str, Any]] = []
    total = per_class * len(wanted)
    bar = progress_bar(total=total, disable=not progress, unit="img", desc="generate", dynamic_ncols=True)
    dim = model.cfg.model.latent_dim
    run = compiled_runner(model.generator, batch_size) if compile else model.generator
    # Class names come from the user's folder names: each becomes one safe, distinct path component,
    # so no name ('..', 'a/b', '/etc') can place a file outside `out`. Computed over all classes so
    # that a --classes subset gets the same folders.
    folders = safe_names(names)
    for name in wanted:
        cls = names.index(name)
        folder = folders[name]
        z_all = latents(seed, cls, per_class, dim, truncation)
        for start in range(0, per_class, batch_size):
            idx = range(start, min(start + batch_size, per_class))
            paths = [out / folder / f"{i:06d}.png" for i in idx]
            write_batch(
                paths,
                z_all[start : start + len(paths)],
                model.labels(cls, len(paths), "cpu"),
                run,
                model.device,
                resume,
            )
            for i, p in zip(idx, paths):
                files.append({"file": f"{folder}/{p.name}", "class": name, "label": cls, "index": i})
            bar.update(len(paths))
    bar.close()
    manifest = {**manifest_header(model, seed, truncation, per_class, wanted, folders), "files": files}
    return finish_output(out, manifest)


# ---------------------------------------------------------------- resumable, atomic image-folder output
# Shared by `generate_folder` and `generation.variations.variations_folder`: every image file is written
# atomically, the folder carries a marker with the settings while it is incomplete, and the manifest is
# written last. A rerun with --resume and the same settings writes exactly the missing files.


# What a generation writes: manifest, marker, and <class>/NNNNNN.png (generate) or NNNNNN_VVV.png (variations).
_GENERATED_IMAGE = re.compile(r"^\d{6}(_\d{3})?\.png$")


def earlier_output(out: Path) -> tuple[list[Path], list[Path]]:
    """(files an earlier generation wrote, every other file) in `out`. Only a folder with a manifest or an
    incomplete-marker holds an earlier generation; its files are the manifest, the marker and the
    generated-image names one level down. Hidden temporaries of an interrupted atomic write count as its."""
    if not out.is_dir():
        return [], []
    ours_here = (out / MANIFEST).is_file() or (out / PARTIAL).is_file()
    ours, other = [], []
    for p in sorted(out.rglob("*")):
        if p.is_dir() and not p.is_symlink():
            continue
        rel = p.relative_to(out).parts
        generated = (len(rel) == 1 and rel[0] in (MANIFEST, PARTIAL)) or (
            len(rel) == 2 and (bool(_GENERATED_IMAGE.match(rel[1])) or rel[1].startswith("."))
        )
        (ours if ours_here and generated and not p.is_symlink() else other).append(p)
    return ours, other


def clear_earlier_output(out: Path) -> int:
    """`--force`: remove what an earlier generation wrote, so the folder ends holding exactly what the new
    manifest lists; refuse (one line) when it holds files vaemsgan did not write. Returns files removed."""
    ours, other = earlier_output(out)
    if other:
        raise OutputExistsError(
            f"{out}: holds {len(other)} file(s) an earlier vaemsgan generation did not write (e.g. "
            f"{other[0]}): --force replaces only an earlier generation; move them or choose an empty folder"
        )
    for p in ours:
        p.unlink()
    for d in sorted((p for p in out.iterdir() if p.is_dir()), reverse=True):
        if not any(d.iterdir()):
            d.rmdir()
    return len(ours)


def open_output(out: Path, settings: dict[str, Any], *, force: bool, resume: bool) -> Path:
    """Check that `out` may be written (empty, --force over an earlier generation, or --resume of a run with
    the same `settings`), create it and mark it incomplete. Returns the marker's path."""
    partial = out / PARTIAL
    if resume and (partial.is_file() or (out / MANIFEST).is_file()):
        # An interrupted run left the marker; a finished one its manifest: either names the settings.
        previous = _read_settings(partial if partial.is_file() else out / MANIFEST, settings.keys())
        if previous != settings:
            raise OutputExistsError(
                f"{out}: holds an interrupted generation with other settings; use --force"
            )
    elif out.is_dir() and any(out.iterdir()) and not force:
        if resume:
            raise OutputExistsError(
                f"{out}: nothing to resume (no interrupted or finished generation here); "
                "use --force to write into it anyway"
            )
        raise OutputExistsError(
            f"{out}: output folder exists and is not empty; use --force to overwrite "
            f"(or --resume to finish an interrupted generation)"
        )
    elif force and out.is_dir() and any(out.iterdir()):
        clear_earlier_output(out)
    prepare_output_dir(out, force=True)
    atomic_write_json(partial, settings)
    return partial


@torch.inference_mode()
def write_batch(
    paths: list[Path],
    z: torch.Tensor,
    labels: torch.Tensor | None,
    decoder: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
    device: torch.device,
    resume: bool,
) -> int:
    """Decode z[i] (with labels[i]) on `device` into paths[i], atomically; with `resume`, files already
    there are kept (and not decoded). Returns the number of files written."""
    todo = [k for k, p in enumerate(paths) if not (resume and p.is_file())]
    if not todo:
        return 0
    y = None if labels is None else labels[todo].to(device)
    arr = to_uint8(decoder(z[todo].to(device), y)).permute(0, 2, 3, 1).cpu().numpy()
    for k, a in zip(todo, arr):
        save_png(paths[k], a, fsync=False)
    return len(todo)


def finish_output(out: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Write the manifest (atomically) and drop the incomplete-marker: the folder is complete."""
    atomic_write_json(out / MANIFEST, manifest)
    (out / PARTIAL).unlink(missing_ok=True)
    return manifest


@torch.inference_mode()
def interpolation_grid(
    model: LoadedModel, z0: torch.Tensor, z1: torch.Tensor, steps: int, classes: list[int]
) -> torch.Tensor:
    """Rows = classes, columns = spherical interpolation from z0 to z1; returns uint8 N x C x H x W."""
    device = model.device
    t = torch.linspace(0, 1, steps)
    z = torch.stack([slerp(z0, z1, float(v)) for v in t]).to(device)
    rows = []
    for c in classes:
        rows.append(to_uint8(model.generator(z, model.labels(c, steps, device))).cpu())
    return torch.cat(rows)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation: stays on the Gaussian shell where a linear blend would shrink the norm."""
    an, bn = a / a.norm(), b / b.norm()
    omega = torch.acos((an * bn).sum().clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    if so.abs() < 1e-6:
        return (1 - t) * a + t * b
    return torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b
