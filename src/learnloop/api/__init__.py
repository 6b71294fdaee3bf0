"""The HTTP API: a thin FastAPI layer over the library (``create_app``), keys per tenant."""

from .app import create_app

__all__ = ["create_app"]
