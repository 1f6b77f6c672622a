"""Pinned means verifiable: a content digest for any folder, HEAD for a clean git checkout, the commit of a
hub snapshot — and nothing else, wherever remote code is about to be trusted or imported."""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest
from probing import context, linux_cpu, probe
from toy_remote import write_toy

from dsocr_probe.model import loading
from dsocr_probe.inputs import pinning
from dsocr_probe.probes.context import Options, finding_of
from dsocr_probe.findings import InputError, Status
from dsocr_probe.inputs.trust import import_refusal
from dsocr_probe.inputs.target import resolve

COMMIT = "0123456789abcdef0123456789abcdef01234567"
BLOCKS = "def helper():\n    return 1\n"
WHO = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
       "GIT_COMMITTER_EMAIL": "t@example.com"}


def toy(folder):
    return write_toy(folder, "from .blocks import helper\n", extra={"blocks.py": BLOCKS, "unused.py": "X = 1\n"})


def git(folder, *args) -> str:
    out = subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True, text=True,
                         env={**os.environ, **WHO})
    return out.stdout.strip()


def checkout(folder):
    git(folder, "init", "-q")
    git(folder, "add", "-A")
    git(folder, "commit", "-qm", "model")
    return git(folder, "rev-parse", "HEAD")


def findings(folder, **options):
    result = probe("remote_code", context(linux_cpu(), model=str(folder), trust_remote_code=True, **options))
    return {f.code: f for f in result.findings}


def test_the_digest_is_the_sha256_of_the_sorted_manifest_of_the_remote_code_files(tmp_path):
    folder = toy(tmp_path / "m")
    files = ["blocks.py", "configuration_toy.py", "modeling_toy.py"]  # what auto_map reaches; not unused.py
    manifest = "".join(f"{name}\0{hashlib.sha256((folder / name).read_bytes()).hexdigest()}\n" for name in files)
    assert pinning.content_digest(folder) == "sha256:" + hashlib.sha256(manifest.encode()).hexdigest()
    before = pinning.content_digest(folder)
    (folder / "unused.py").write_text("X = 2\n")
    assert pinning.content_digest(folder) == before
    (folder / "blocks.py").write_text(BLOCKS + "# changed\n")
    assert pinning.content_digest(folder) != before


def test_a_commit_hash_on_a_plain_folder_pins_nothing(tmp_path):
    folder = toy(tmp_path / "m")
    digest = pinning.content_digest(folder)
    f = findings(folder, revision=COMMIT)["remote_code.unpinned"]
    assert f.status is Status.FAIL
    assert "neither a git checkout nor a hub-cache snapshot" in f.detail
    assert f"`--dsocr-revision {digest}`" in f.fix and "rev-parse" not in f.fix
    # The loader and the import gate ask the same question and get the same answer.
    assert import_refusal(Options(trust_remote_code=True, revision=COMMIT), resolve(str(folder), COMMIT)).status is Status.FAIL
    with pytest.raises(InputError) as error:
        loading.model_class(context(model=str(folder), trust_remote_code=True, revision=COMMIT))
    assert error.value.code == "loading.unpinned" and error.value.params["digest"] == digest
    assert digest in finding_of(error.value).fix


def test_the_content_digest_pins_the_folder_until_a_file_changes(tmp_path):
    folder = toy(tmp_path / "m")
    digest = pinning.content_digest(folder)
    found = findings(folder, revision=digest)
    assert found["remote_code.pinned"].title == f"Trusted remote code is pinned by content: {digest}"
    assert import_refusal(Options(trust_remote_code=True, revision=digest), resolve(str(folder), digest)) is None
    (folder / "blocks.py").write_text(BLOCKS + "import os\n")
    f = findings(folder, revision=digest)["remote_code.unpinned"]
    assert f.status is Status.FAIL and f"do not match {digest}" in f.detail
    assert pinning.content_digest(folder) in f.fix


def test_the_report_names_the_digest_before_anything_is_trusted(tmp_path):
    folder = toy(tmp_path / "m")
    result = probe("remote_code", context(linux_cpu(), model=str(folder)))
    modules = next(f for f in result.findings if f.code == "remote_code.modules")
    assert modules.evidence["content digest (--dsocr-revision)"] == pinning.content_digest(folder)
    assert pinning.content_digest(folder) in modules.fix


def test_a_clean_git_checkout_is_pinned_by_its_head(tmp_path):
    folder = toy(tmp_path / "m")
    head = checkout(folder)
    f = findings(folder, revision=head)["remote_code.pinned"]
    assert f.title == f"Trusted remote code is pinned to commit {head} (git checkout, checked)"
    assert f.evidence["resolved commit"] == head
    other = findings(folder, revision="c" * 40)["remote_code.unpinned"]
    assert f"holds commit {head}, not {'c' * 40}" in other.detail


def test_uncommitted_changes_to_the_remote_code_unpin_a_git_checkout(tmp_path):
    folder = toy(tmp_path / "m")
    head = checkout(folder)
    (folder / "blocks.py").write_text(BLOCKS + "import os\n")
    f = findings(folder, revision=head)["remote_code.unpinned"]
    assert f.status is Status.FAIL and "blocks.py" in f.detail and pinning.content_digest(folder) in f.fix
    git(folder, "checkout", "--", "blocks.py")
    (folder / "unused.py").write_text("X = 3\n")  # not remote code: does not matter
    assert "remote_code.pinned" in findings(folder, revision=head)


def test_an_ignored_model_folder_in_a_project_repository_is_not_pinned_by_the_project_head(tmp_path):
    project = tmp_path / "project"
    toy(project / "models" / "m")
    (project / ".gitignore").write_text("models/\n")
    head = checkout(project)
    f = findings(project / "models" / "m", revision=head)["remote_code.unpinned"]
    assert f.status is Status.FAIL and "modeling_toy.py" in f.detail


def test_git_that_cannot_run_pins_nothing(tmp_path, monkeypatch):
    folder = toy(tmp_path / "m")
    head = checkout(folder)

    def missing(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(pinning.subprocess, "run", missing)
    f = findings(folder, revision=head)["remote_code.unpinned"]
    assert f.params["why"] == "plain-folder"
