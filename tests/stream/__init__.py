"""Tests of the sans-I/O response side (proxy/stream/)."""
