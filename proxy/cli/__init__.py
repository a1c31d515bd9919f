"""The command line: `serve`, the admin commands, `doctor` and the Claude Code launcher.
Nothing else in the proxy imports it."""
