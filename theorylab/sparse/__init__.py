"""Sparse attention patterns, their exact costs, connectivity and fast attention."""
