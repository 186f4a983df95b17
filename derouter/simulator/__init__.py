"""Simulated derouter.ai upstream (management API and OpenAI-compatible inference), stdlib only."""

from .server import ConfigError, make_server, serve

__all__ = ["ConfigError", "make_server", "serve"]
