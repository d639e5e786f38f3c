"""bertsecrets: explore the self-attention of BERT models from the terminal."""

__version__ = "0.1.0"
