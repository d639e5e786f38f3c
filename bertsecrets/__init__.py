"""bertsecrets: explore the self-attention of BERT models from the terminal."""

from bertsecrets.core.version import __version__

__all__ = ["__version__"]
