"""`improved` model (being implemented)."""
