"""Tests of whole sessions through real clients: the anthropic SDK and Claude Code itself."""
