"""Tests of the Ollama side (proxy/ollama/) and the fake Ollama the tests use."""
