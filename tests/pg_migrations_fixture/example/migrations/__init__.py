"""Migration group ``example``: a table and its seed row."""
