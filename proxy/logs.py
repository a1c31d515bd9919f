"""Logging setup. Records go to stderr as one line each."""

from __future__ import annotations

import logging
import sys

__all__ = ["configure_logging"]

_HANDLER_NAME = "claude-code-ollama-proxy"


def configure_logging(level: str = "INFO") -> None:
    """Install the proxy's handler on the ``proxy`` logger (idempotent)."""
    logger = logging.getLogger("proxy")
    logger.setLevel(level)
    if not any(h.get_name() == _HANDLER_NAME for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
