import pytest

from dsocr_probe import messages
from dsocr_probe.knowledge.rules import VERSION_RULES, matching
from probing import codes, context, linux_cpu, probe


@pytest.mark.parametrize(
    "versions, code",
    [
        ({"peft": "0.18.0", "transformers": "4.45.0"}, "environment.peft-needs-modeling-layers"),
        ({"peft": "0.19.0", "transformers": "4.46.3", "torch": "2.13.0"}, "environment.peft-torch-distributed-tensor"),
        ({"peft": "0.17.1", "transformers": "5.0.0"}, "environment.peft-too-old-for-transformers-5"),
        ({"peft": "0.19.0", "transformers": "5.23.0"}, "environment.peft-too-old-for-transformers-5.23"),
        ({"torch": "2.5.1+cu121", "transformers": "5.23.0", "peft": "0.21.2"}, "environment.torch-too-old-for-transformers"),
    ],
)
def test_known_bad_pairs_fail_and_name_working_versions(versions, code):
    result = probe("environment", context(linux_cpu(**versions)))
    assert codes(result)[code] == "fail"
    finding = next(f for f in result.findings if f.code == code)
    assert any(ch.isdigit() for ch in finding.fix), finding.fix  # names versions that work


@pytest.mark.parametrize(
    "versions",
    [
        {"peft": "0.17.1", "transformers": "4.46.3", "torch": "2.13.0"},  # the v1 stack
        {"peft": "0.21.2", "transformers": "5.23.0", "torch": "2.13.0"},  # the OCR-2 stack
        {"peft": "0.18.0", "transformers": "4.52.1"},
    ],
)
def test_working_stacks_match_no_rule(versions):
    assert matching(linux_cpu(**versions).versions) == []


def test_every_rule_cites_a_source_and_a_fix():
    for rule in VERSION_RULES:
        assert rule.source and rule.when and messages.lookup(rule.code).fix


def test_torchvision_built_for_another_torch():
    result = probe("environment", context(linux_cpu(torch="2.13.0", torchvision="0.20.1+cu121")))
    f = next(f for f in result.findings if f.code == "environment.torchvision-mismatch")
    assert "torch 2.5" in f.title and "0.28" in f.fix


def test_missing_peft_is_a_blocker():
    facts = linux_cpu()
    facts.versions["peft"] = None
    assert codes(probe("environment", context(facts)))["environment.missing"] == "fail"


def test_installed_environment_has_no_conflicts():
    # The machine running the tests installed a working stack: the probe must agree.
    result = probe("environment", context())
    assert result.status.value == "pass", [(f.code, f.title) for f in result.findings]
