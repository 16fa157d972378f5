"""The package version, in a module of its own so that any layer can record it without importing
the package root (which lazily reaches the API at the top of the stack)."""
__version__ = "0.2.0"
