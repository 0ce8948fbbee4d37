"""animate-cli: make a still image move like a driving video.

The package is import-light on purpose: torch and PyAV are imported by the modules that need them,
so ``animate --help`` answers without loading either.
"""

__version__ = "0.1.0"
