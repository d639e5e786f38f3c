"""The terminal UI: browse a store's runs, heads, maps and analyses over SSH (never imports torch)."""
