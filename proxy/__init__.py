"""claude-code-ollama-proxy: the Anthropic Messages API, answered by a local Ollama."""

__version__ = "0.1.0"
