import sys
from types import SimpleNamespace

import pytest

from dsocr_probe.model import trainrun


def test_a_class_beside_the_config_resolves_and_sys_path_is_left_as_it_was(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "configs").mkdir(parents=True)
    (project / "team_trainer_mod.py").write_text("class TeamTrainer:\n    pass\n", encoding="utf-8")
    cfg = SimpleNamespace(path=project / "configs" / "training.yaml")
    monkeypatch.chdir(tmp_path)
    before = list(sys.path)

    cls = trainrun.resolve_object("team_trainer_mod:TeamTrainer", cfg)

    assert cls.__name__ == "TeamTrainer"
    assert sys.path == before
    sys.modules.pop("team_trainer_mod", None)


def test_a_name_that_is_not_there_raises_and_sys_path_is_left_as_it_was(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = list(sys.path)
    with pytest.raises((ImportError, AttributeError)):
        trainrun.resolve_object("no_such_module_here:Thing", SimpleNamespace(path=tmp_path / "c.yaml"))
    assert sys.path == before
