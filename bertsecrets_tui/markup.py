"""Putting data (tokens, sentences, names, error messages) into Textual markup safely."""

from __future__ import annotations


def escape(text: str) -> str:
    """``text`` shown as it is: every "[" escaped, so "[CLS]" is a token, not a style tag.

    Textual's own ``escape`` leaves "[CLS]" alone (it does not look like a tag to
    it) while its markup parser still reads it as one and drops it.
    """
    return str(text).replace("[", r"\[")
