"""The Flask app: one factory, one blueprint per area (health today; admin, portal,
webhooks and api as they land). Views parse input, call the kernel, render.
"""

from web.app import create_app

__all__ = ["create_app"]
