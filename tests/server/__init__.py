"""Tests of the HTTP side (proxy/server/), through the real server."""
