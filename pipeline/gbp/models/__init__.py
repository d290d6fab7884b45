"""Denoising factor graphs built from the engine's factor families and layers."""
