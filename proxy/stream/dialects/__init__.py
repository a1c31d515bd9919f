"""Tool calls printed as text, one recognizer per model family's dialect. Sans-I/O.

:mod:`.base` holds the interface (:class:`Dialect`: openers, ``parse`` → MORE / NO /
:class:`Found`) and shared helpers; :mod:`.families` the recognizers with their sample
tables; :mod:`.registry` the list and the choice per model. The streaming engine that holds
and releases text around them is :class:`proxy.stream.text_calls.TextCallFilter`;
:func:`proxy.stream.text_calls.recover_calls_from_text` is the whole-text entry point.
"""

from .base import Dialect, Found, Sample, Tools
from .registry import BY_NAME, DIALECTS, dialects_for_template, native_dialect, template_opens_think

__all__ = [
    "Dialect", "Found", "Sample", "Tools", "BY_NAME", "DIALECTS", "dialects_for_template", "native_dialect",
    "template_opens_think",
]
