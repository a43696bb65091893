"""The package version, read from the installed distribution's metadata (pyproject.toml is the one
place it is written). Lower layers import it from here, never from the package root."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("image2stylegan")
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"
