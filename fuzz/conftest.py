"""Hypothesis profiles and the shared server fixtures for the fuzz harness.

``FUZZ_PROFILE=long`` (``make fuzz``) runs many examples with no deadline; the default,
``ci``, keeps the whole fuzz run of ``make test`` well under 60 seconds.
``FUZZ_EXAMPLES`` overrides the example count of either.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

from tests.conftest import fake_ollama, proxy, start_proxy  # noqa: F401  (fixtures)

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
