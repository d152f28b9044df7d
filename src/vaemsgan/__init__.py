"""vaemsgan: VAE-MSGAN synthetic training images for small labelled image sets."""

__version__ = "0.1.0"
