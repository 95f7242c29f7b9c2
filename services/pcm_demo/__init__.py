"""End-to-end demo: a realistic synthetic national dataset pushed through the public API."""
