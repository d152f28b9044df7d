"""Generation: sampling a trained model into an ImageFolder, reconstruction and interpolation."""

from vaemsgan.generation.sampler import (
    LoadedModel,
    generate_folder,
    interpolation_grid,
    load_model,
    reconstruct_images,
)

__all__ = ["LoadedModel", "generate_folder", "interpolation_grid", "load_model", "reconstruct_images"]
