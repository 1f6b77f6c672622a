"""Hooks a conftest.py can implement to steer the probe suite."""

import pytest


@pytest.hookspec(firstresult=True)
def pytest_dsocr_facts(config, facts):
    """Return an :class:`~dsocr_probe.inputs.facts.EnvFacts` to judge instead of the gathered ``facts``.

    Lets a team replay another machine (a Windows box with an sm_120 GPU and an old peft)
    on CI. The report marks such runs as replays.
    """
