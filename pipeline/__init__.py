"""pipeline: learning and denoising by Gaussian belief propagation in deep factor graphs."""

__version__ = "0.1.0"
