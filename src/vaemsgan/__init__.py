"""vaemsgan: VAE-MSGAN synthetic training images for small labelled image sets.

Python API (see `vaemsgan.api`): `vaemsgan.load(path)` returns a `Model` (sample, reconstruct, variations,
write_imagefolder, reconstruction_quality, dataset); `SyntheticDataset` and `GeneratedImageFolder` are
torch Datasets of synthetic images. They are imported on first use, so `import vaemsgan` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vaemsgan.version import __version__

__all__ = [
    "GeneratedImageFolder",
    "Model",
    "ReconstructionQuality",
    "SyntheticDataset",
    "__version__",
    "load",
]

if TYPE_CHECKING:
    from vaemsgan.api import GeneratedImageFolder, Model, ReconstructionQuality, SyntheticDataset, load

_API = {"GeneratedImageFolder", "Model", "ReconstructionQuality", "SyntheticDataset", "load"}


def __getattr__(name: str) -> Any:
    if name in _API:
        from vaemsgan import api

        return getattr(api, name)
    raise AttributeError(f"module 'vaemsgan' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _API)
