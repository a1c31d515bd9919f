"""Tests of the command line (proxy/cli/)."""
