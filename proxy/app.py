"""The ASGI application, where Hypercorn looks for it: ``hypercorn proxy.app:app --worker-class trio``.

The application itself lives in :mod:`proxy.server.app`; this module only names it.
"""

from .server.app import ProxyApp, app

__all__ = ["ProxyApp", "app"]
