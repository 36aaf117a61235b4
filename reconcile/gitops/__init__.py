"""Git repositories as the source of truth (internal)."""
