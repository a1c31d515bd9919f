"""The live view: the broadcast of request events, the feed of live requests, the terminal
`tail` client and the dashboard page. Knows nothing of HTTP routes or of Ollama."""
