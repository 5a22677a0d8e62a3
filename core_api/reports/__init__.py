"""Reports with ordered sections, owned by users and optionally about one of their businesses."""
