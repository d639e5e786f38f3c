"""Ingest: fine-tune BERT models on GLUE tasks and write their attention maps to the store."""
