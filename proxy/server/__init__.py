"""The HTTP side: the ASGI app and its routes, the messages handler, the relay and its sinks,
the request log, and running it all under Hypercorn on trio."""
