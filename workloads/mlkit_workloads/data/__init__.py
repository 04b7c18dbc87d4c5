"""Built-in data: a synthetic sales generator and a real small dataset shipped in a PyPI package."""
