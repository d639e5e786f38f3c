"""The version of bertsecrets, read by the CLI, the run records and the package metadata."""

__version__ = "0.1.0"
