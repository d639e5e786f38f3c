"""The browser's own widgets, one module each."""
