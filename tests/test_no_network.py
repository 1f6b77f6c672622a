"""No probe reaches the network: hub ids resolve from the local cache and every socket is refused."""

from __future__ import annotations

import socket

import pytest


@pytest.fixture()
def no_sockets(monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[1:] if args else kwargs)
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def test_a_full_probe_run_opens_no_connection(pytester, no_sockets, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: nothing to find locally either
    result = pytester.runpytest("--dsocr-probe")
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    assert no_sockets == []
    result.stdout.fnmatch_lines(["*verdict:*"])


def test_an_uncached_hub_id_is_not_fetched(pytester, no_sockets, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    result = pytester.runpytest("--dsocr-probe", "--dsocr-model", "deepseek-ai/DeepSeek-OCR")
    assert no_sockets == []
    result.stdout.fnmatch_lines(["*not in the local Hugging Face cache*"])
