"""py-feat backend (placeholder until implemented)."""
