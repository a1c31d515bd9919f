"""Tests of the live view (proxy/live/)."""
