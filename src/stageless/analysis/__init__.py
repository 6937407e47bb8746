"""Canary analysis: judges that compare candidate and stable from batches of live traffic (pure)."""
