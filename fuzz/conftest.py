"""Hypothesis profiles and the shared server fixtures for the fuzz harness.

``FUZZ_PROFILE=long`` (``make fuzz``) runs many examples with no deadline; the default,
``ci``, keeps the whole fuzz run of ``make test`` well under 60 seconds.
``FUZZ_EXAMPLES`` overrides the example count of either.
"""

from __future__ import annotations

import os

import contextlib

import trio
from hypothesis import HealthCheck, settings

from proxy.config import load_settings
from proxy.server.runner import serve
from tests.conftest import MODELS, fake_ollama, proxy, start_proxy  # noqa: F401  (fixtures)
from tests.fake_ollama import FakeOllama

_examples = os.environ.get("FUZZ_EXAMPLES")
settings.register_profile(
    "ci", max_examples=int(_examples or 150), deadline=None, derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long", max_examples=int(_examples or 20000), deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("FUZZ_PROFILE", "ci"))

#: the server-path fuzz is ~100x slower per example than the sans-I/O one
SERVER_EXAMPLES = max(5, settings().max_examples // 10)


@contextlib.asynccontextmanager
async def running_proxy(**overrides):
    """A fake Ollama and the real proxy for one example (Hypothesis runs examples outside
    pytest-trio's fixtures). Yields (fake, proxy URL); everything stops on exit."""
    async with trio.open_nursery() as nursery:
        fake = FakeOllama(models=list(MODELS))
        await nursery.start(fake.serve)
        values = {"host": "127.0.0.1", "port": 0, "ollama_url": fake.url, "log_level": "WARNING", **overrides}
        settings_ = load_settings(values, environ={}, read_config_file=False)
        urls = await nursery.start(serve, settings_)
        try:
            with trio.fail_after(30):
                yield fake, urls[0]
        finally:
            nursery.cancel_scope.cancel()
