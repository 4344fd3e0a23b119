"""The package version, kept apart so the CLI can read it without importing anything else."""

__all__ = ("__version__",)

__version__ = "0.1.0"
