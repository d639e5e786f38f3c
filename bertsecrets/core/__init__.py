"""The shared kernel below every room: errors, configuration, the task registry, the version."""
