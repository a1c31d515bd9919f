"""Tests of the sans-I/O request side (proxy/protocol/)."""
