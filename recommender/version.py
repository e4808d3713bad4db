"""The package version (a leaf: the manifest writer and the service report it)."""

__version__ = "0.1.0"
