"""The model target: a mistyped folder is a missing folder, a Windows path on Linux says so, and the download
advice names the command the installed huggingface_hub has."""

from __future__ import annotations

import importlib.metadata
import os

import pytest

from dsocr_probe.inputs import target
from dsocr_probe.findings import InputError
from dsocr_probe.probes.context import finding_of


def stopped(model, revision=None):
    """The finding the probes report for a target that cannot be resolved."""
    with pytest.raises(InputError) as error:
        target.resolve(model, revision)
    return finding_of(error.value)


def test_a_mistyped_relative_folder_is_a_missing_folder_not_a_hub_id(tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    monkeypatch.chdir(tmp_path)
    for model in ("models/NoSuchModel", "./NoSuchModel", "data/models/NoSuchModel", "~/dsocr-no-such-model"):
        f = stopped(model)
        assert f.code == "target.missing-folder", model
        assert "does not exist" in f.title and str(tmp_path) in f.detail


def test_an_org_slash_name_without_such_a_folder_is_still_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert stopped("nobody/NoSuchModel").code == "target.not-cached"


@pytest.mark.skipif(os.name == "nt", reason="a Windows path is a path there")
@pytest.mark.parametrize("model", ["C:\\models\\DeepSeek-OCR", "D:/models/x", "\\\\server\\share\\x"])
def test_a_windows_path_on_linux_says_so(model):
    f = stopped(model)
    assert f.code == "target.windows-path" and "Windows path" in f.title and "/mnt/c" in f.fix


def test_the_download_fix_names_the_installed_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    real = importlib.metadata.distribution

    class OnlyOldCli:
        def __init__(self, dist):
            self.entry_points = [e for e in dist.entry_points if e.name != "hf"]

    # Console scripts only: huggingface_hub also registers an fsspec protocol named `hf`.
    names = {e.name for e in real("huggingface_hub").entry_points if e.group == "console_scripts"}
    assert target.download_command() == ("hf download" if "hf" in names else "huggingface-cli download")
    assert f"`{target.download_command()} nobody/NoSuchModel`" in stopped("nobody/NoSuchModel").fix
    monkeypatch.setattr(target.importlib.metadata, "distribution", lambda name: OnlyOldCli(real(name)))
    assert target.download_command() == "huggingface-cli download"
    f = stopped("nobody/NoSuchModel", "main")
    assert "`huggingface-cli download nobody/NoSuchModel --revision main`" in f.fix


def test_a_content_pin_is_not_asked_of_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    asked = []

    def snapshot_download(repo, revision=None, local_files_only=False):
        asked.append(revision)
        raise OSError("not cached")

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    f = stopped("org/model", "sha256:" + "0" * 64)
    assert asked == [None] and "--revision" not in f.fix
