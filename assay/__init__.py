"""assay: a durable workflow engine that ships as one file."""

__version__ = "0.1.0"
BUILD_PROFILE = "release"

__all__ = ["__version__", "BUILD_PROFILE"]
