"""Every test starts from a clean omnihub environment.

A developer's shell (or CI) may export OMNIHUB_HOME, OMNIHUB_URL, OMNIHUB_OFFLINE, HF_TOKEN...;
tests and the child interpreters they start (``os.environ`` is what they inherit) must not
see them, or a test would download into the user's cache or run offline by accident.
"""

from __future__ import annotations

import os

import pytest

#: Variables outside the OMNIHUB_ prefix that the runtime reads.
_OTHERS = ("HF_ENDPOINT", "HF_TOKEN")


@pytest.fixture(autouse=True)
def _clean_omnihub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OMNIHUB_") or name in _OTHERS:
            monkeypatch.delenv(name)
