"""Known-bad version combinations, as data.

Each rule matches when every listed distribution's installed version is inside its
specifier (a missing distribution never matches); the message of its code names the versions that work.
Sources: the version table in the DeepSeek-OCR v1 reference (checked in the published
wheels) and transformers' own MIN_PEFT_VERSION.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from ..findings import Status
from ..messages import N_

REFERENCE = "reference/deepseek_ocr_v1.md, version facts"


@dataclass(frozen=True)
class VersionRule:
    """A known-bad combination; what it says (naming the versions that work) is the message of its code."""

    code: str
    when: dict[str, str]  # distribution -> specifier the installed version must satisfy
    status: Status
    source: str = REFERENCE

    def matches(self, versions: dict[str, str | None]) -> bool:
        for dist, spec in self.when.items():
            v = versions.get(dist)
            if v is None:
                return False
            try:
                if Version(v) not in SpecifierSet(spec, prereleases=True):
                    return False
            except InvalidVersion:
                return False
        return True


# Their texts are in dsocr_probe.messages.texts.environment, with the matched versions as params.
VERSION_RULES: tuple[VersionRule, ...] = (
    VersionRule("environment.peft-needs-modeling-layers", {"peft": "==0.18.0", "transformers": "<4.52.1"}, Status.FAIL),
    VersionRule("environment.peft-torch-distributed-tensor",
                {"peft": ">=0.18.1,<=0.21.2", "transformers": "<4.52.1", "torch": ">=2.13"}, Status.FAIL),
    VersionRule("environment.peft-too-old-for-transformers-5", {"transformers": ">=5.0,<5.23", "peft": "<0.18.0"},
                Status.FAIL, source="transformers MIN_PEFT_VERSION"),
    VersionRule("environment.peft-too-old-for-transformers-5.23", {"transformers": ">=5.23", "peft": "<0.20.0"},
                Status.FAIL, source="transformers MIN_PEFT_VERSION"),
    VersionRule("environment.torch-too-old-for-transformers", {"transformers": ">=5.23", "torch": "<2.6"}, Status.FAIL),
)


def matching(versions: dict[str, str | None]) -> list[VersionRule]:
    return [rule for rule in VERSION_RULES if rule.matches(versions)]


@dataclass(frozen=True)
class ArgRule:
    """A TrainingArguments (or Trainer) keyword that was never valid, renamed or removed."""

    name: str
    use: str  # the name to write instead
    introduced: str | None = None  # the release that introduced `use` (old name deprecated from then)
    removed: str | None = None  # the release that removed `name`
    trainer: bool = False  # a Trainer(...) argument, not a TrainingArguments one
    note: str = ""  # a msgid: how `use` differs from the old name, when it does
    source: str = REFERENCE


ARG_RULES: dict[str, ArgRule] = {
    r.name: r
    for r in (
        ArgRule("optimizer", "optim"),
        ArgRule("evaluation_strategy", "eval_strategy", introduced="4.41.0", removed="4.51.0"),
        ArgRule("warmup_ratio", "warmup_steps", removed="5.15.0", note=N_("a float in [0, 1) is read as a ratio")),
        ArgRule("logging_dir", "TENSORBOARD_LOGGING_DIR", removed="5.15.0",
                note=N_("an environment variable, not an argument")),
        ArgRule("tokenizer", "Trainer(processing_class=...)", introduced="4.46.0", removed="5.0.0", trainer=True),
        ArgRule("processing_class", "Trainer(processing_class=...)", trainer=True),
        ArgRule("data_collator", "Trainer(data_collator=...)", trainer=True),
    )
}
