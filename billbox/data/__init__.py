"""Data files shipped with Billbox (read with ``importlib.resources``)."""
