"""The browser's screens, one module each; the app switches between them as modes."""
