"""The Ollama side: one client factory, the streaming chat client (h11 on trio sockets),
the admin calls, per-model capabilities and the pool of hosts."""
