"""Every text of the message catalog, worded with the params its probe really gives, in English and Russian.

Each scenario below makes the probes (or the probe functions that build the finding) report a
finding the way they do in a run: a small checkpoint folder, a config, a hand-made batch or
gradient report. The tests check that

- every (code, variant) of the catalog is worded by at least one real finding, so a text whose
  placeholders do not match what its probe gives (a typo, a renamed param) fails here;
- every finding is worded in both languages, and its Russian title is Russian.

That each Russian text has the same placeholders as its English msgid is tests/test_messages.py's.
"""

from __future__ import annotations

import contextlib
import json
import os
import math
import shutil
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Iterable

import pytest
import torch
import transformers
import yaml
from packaging.version import Version
from pages import write_pages
from probing import context, linux_cpu, probe
from toy_remote import CLEAN_MODELING, write_toy

from dsocr_probe.model import loading, model_facts
from dsocr_probe.run import runner
from dsocr_probe.inputs import trust
from dsocr_probe.probes.context import Options
from dsocr_probe.inputs.facts import DeviceFacts, EnvFacts
from dsocr_probe.findings import Finding, InputError, ProbeStop, Status, fail
from dsocr_probe import messages

COMMIT = "0123456789abcdef0123456789abcdef01234567"
INSTALLED_TRANSFORMERS = transformers.__version__

SCENARIOS: dict[str, Callable[["Env"], Iterable[Finding]]] = {}


def scenario(fn):
    SCENARIOS[fn.__name__] = fn
    return fn


class Env:
    """What a scenario may use: fresh folders, the v1 stand-in, and a monkeypatch undone after it."""

    def __init__(self, tmp_path_factory, v1_model: Path, monkeypatch: pytest.MonkeyPatch):
        self._factory = tmp_path_factory
        self.v1_model = v1_model
        self.mp = monkeypatch

    def tmp(self) -> Path:
        return self._factory.mktemp("ru")


def stopped(fn, *args, **kwargs) -> Finding:
    """The finding a loader stops with."""
    with pytest.raises(ProbeStop) as stop:
        fn(*args, **kwargs)
    return stop.value.finding


def installed(**versions) -> EnvFacts:
    return linux_cpu(transformers=INSTALLED_TRANSFORMERS, torch=torch.__version__.split("+")[0], **versions)


# ---------------------------------------------------------------- environment and CUDA


@scenario
def environment_rules(env):
    from dsocr_probe.probes import environment

    for versions in (
        {"peft": None, "torchvision": "0.20.1", "torch": "2.13.0"},
        {"transformers": "5.0.0", "peft": "0.17.0"},
        {"transformers": "5.23.0", "peft": "0.19.0", "torch": "2.5.1"},
        {"transformers": "4.45.0", "peft": "0.18.0"},
        {"transformers": "4.46.3", "peft": "0.19.0", "torch": "2.13.0"},
    ):
        yield from environment.run(context(linux_cpu(**versions)))
    # A package's own Requires-Dist, as `pip check` reads it.
    env.mp.setattr(environment.facts_mod, "installed_version", lambda dist: {"dsocr-demo-dist": "1.0"}.get(dist))
    env.mp.setattr(environment.importlib.metadata, "requires", lambda dist: ["torch>=2.6", "peft; extra == 'x'"])
    yield from environment._declared_requirements({"dsocr-demo-dist": "1.0", "torch": "2.5.1"})


@scenario
def cuda_devices(env):
    from dsocr_probe.probes import cuda

    old = ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"]
    blackwell = DeviceFacts(0, "NVIDIA GeForce RTX 5060 Ti", (12, 0), 16 * 2**30)
    yield from cuda._check_device(blackwell, old, "12.1", launch=False, bf16_wanted=False)
    turing = DeviceFacts(0, "Tesla T4", (7, 5), 16 * 2**30)
    yield from cuda._check_device(turing, old, "12.1", launch=False, bf16_wanted=True)
    env.mp.setattr(cuda, "_launch_kernel", lambda index: "CUDA error: an illegal memory access was encountered")
    yield from cuda._check_device(DeviceFacts(0, "NVIDIA A100", (8, 0), 40 * 2**30), old, "12.1", launch=True, bf16_wanted=False)
    for torch_cuda in (None, "12.1"):
        facts = linux_cpu()
        facts.torch_cuda = torch_cuda
        yield probe("cuda", context(facts)).findings[0]
    yield probe("cuda", context(linux_cpu(torch=None))).findings[0]  # torch is not installed


# ---------------------------------------------------------------- remote code

MODELING = CLEAN_MODELING

# Every hazard kind once, inside a function: it runs only when called.
HAZARDS_IN_FUNCTION = """
import base64
import pickle
import subprocess

import requests


def hazards(x, mask):
    requests.get(x)
    subprocess.run(["id"])
    eval(x)
    pickle.loads(x)
    torch.load(x)
    open("/etc/dsocr-probe-test", "w")
    base64.b64decode("aGk=")
    return mask.cuda()


class ToyModelReached(ToyModel):
    def forward(self, input_ids):
        return hazards(input_ids, input_ids)
"""
REACHED = {"AutoConfig": "configuration_toy.ToyConfig", "AutoModel": "modeling_toy.ToyModelReached"}

# ... and once more at module level: it runs as soon as from_pretrained imports the file.
HAZARDS_ON_IMPORT = """
requests.get("https://example.com/payload")
subprocess.run(["id"])
eval("1")
pickle.loads(b"")
torch.load("weights.bin")
open("/etc/dsocr-probe-test", "w")
base64.b64decode("aGk=")
torch.zeros(1).cuda()
"""


def toy(folder: Path, modeling: str = MODELING, **kwargs) -> Path:
    return write_toy(folder, modeling, **kwargs)


def remote(folder: Path, facts: EnvFacts | None = None, **options) -> list[Finding]:
    return probe("remote_code", context(facts or installed(), model=str(folder), **options)).findings


def refused(fn, *args, **kwargs) -> Finding:
    """The finding a service's input error becomes (target resolution, the model config, the trust check)."""
    from dsocr_probe.probes.context import finding_of

    with pytest.raises(InputError) as error:
        fn(*args, **kwargs)
    return finding_of(error.value)


# ... and a second place of each kind, in another function the training step reaches.
HAZARDS_TWICE = HAZARDS_IN_FUNCTION + "\n\ndef again(x):\n" + textwrap.indent(HAZARDS_ON_IMPORT, "    ") + """

class ToyModelTwice(ToyModel):
    def forward(self, input_ids):
        again(input_ids)
        return hazards(input_ids, input_ids)
"""
IMPORTS_OF_HAZARDS = HAZARDS_IN_FUNCTION.split("def hazards")[0]


@scenario
def remote_code_hazards(env):
    """Each hazard kind in one place and in two, in the step and on import, under a safe and an unsafe torch."""
    twice = {"AutoConfig": "configuration_toy.ToyConfig", "AutoModel": "modeling_toy.ToyModelTwice"}
    for torch_version in ("2.13.0", "2.5.1"):
        facts = linux_cpu(transformers=INSTALLED_TRANSFORMERS, torch=torch_version)
        yield from remote(toy(env.tmp() / "m", MODELING + HAZARDS_IN_FUNCTION, auto_map=REACHED), facts)
        yield from remote(toy(env.tmp() / "m", MODELING + HAZARDS_IN_FUNCTION + HAZARDS_ON_IMPORT, auto_map=REACHED), facts)
        yield from remote(toy(env.tmp() / "m", MODELING + HAZARDS_TWICE, auto_map=twice), facts)
        yield from remote(toy(env.tmp() / "m", MODELING + IMPORTS_OF_HAZARDS + HAZARDS_ON_IMPORT), facts)


@scenario
def remote_code_references(env):
    yield from remote(toy(env.tmp() / "m", auto_map={"AutoModel": "modeling_gone.GoneModel"}))  # nothing readable
    yield from remote(toy(env.tmp() / "m", "from .deepencoder import build_sam\n" + MODELING))
    yield from remote(toy(env.tmp() / "m", auto_map={"AutoConfig": "configuration_toy.ToyConfig",
                                                     "AutoModel": "other-org/other-model--modeling_toy.ToyModel"}))
    yield from remote(toy(env.tmp() / "m", "def broken(:\n"))
    yield from remote(toy(env.tmp() / "m", auto_map={"AutoConfig": "configuration_toy.ToyConfig", "AutoModel": 5}))
    yield from remote(toy(env.tmp() / "m", extra={"tokenizer_config.json": "{not json",
                                                  "processor_config.json": '{"auto_map": "modeling_toy.ToyModel"}'}))
    yield from remote(toy(env.tmp() / "m", model_type="llama"))  # a type transformers knows: its auto_map is not run
    native = env.tmp()
    (native / "config.json").write_text(json.dumps({"model_type": "llama"}))
    yield from remote(native)  # no auto_map at all


GUARDED = """
try:
    from transformers import {name}
except ImportError:
    {name} = None
"""


@scenario
def remote_code_transformers_imports(env):
    """One blocking and one guarded missing import, under each branch of the version advice."""
    unknown = "from transformers import DsocrNoSuchClass4711\n" + GUARDED.format(name="DsocrNoSuchClass4712")
    known = ("from transformers.models.llama.modeling_llama import LlamaFlashAttention2\n"
             + GUARDED.format(name="LlamaSdpaAttention").replace("from transformers import",
                                                                  "from transformers.models.llama.modeling_llama import"))
    replay = linux_cpu(transformers="5.0.0", torch=torch.__version__.split("+")[0])
    yield from remote(toy(env.tmp() / "m", unknown + MODELING, model_type="DeepseekOCR"))  # the v1 stack
    yield from remote(toy(env.tmp() / "m", known + MODELING), replay)  # the facts' range, with config.json's release
    yield from remote(toy(env.tmp() / "m", known + MODELING, saved="4.48.0"), replay)  # the facts' range only
    yield from remote(toy(env.tmp() / "m", unknown + MODELING))  # config.json's release
    yield from remote(toy(env.tmp() / "m", unknown + MODELING, saved=None))  # nothing to go by
    yield from remote(toy(env.tmp() / "m"), replay)  # names the version facts do not cover: not checked
    from dsocr_probe.knowledge import transformers_symbols

    broken = transformers_symbols.Lookup(False, "RuntimeError: operator torchvision::nms does not exist", broken=True)
    env.mp.setattr(transformers_symbols, "in_installed", lambda module, name: broken)
    yield from remote(toy(env.tmp() / "m"))


@scenario
def remote_code_packages(env):
    body = """
    import dsocr_absent_required
    try:
        import dsocr_absent_optional
    except ImportError:
        dsocr_absent_optional = None
    """
    yield from remote(toy(env.tmp() / "m", MODELING + textwrap.dedent(body)))


@scenario
def remote_code_trust(env):
    from dsocr_probe.inputs import target as target_mod
    from dsocr_probe.probes import remote_code

    folder = toy(env.tmp() / "m")
    yield from remote(folder, trust_remote_code=True)
    yield from remote(folder, trust_remote_code=True, revision="main", allow_unpinned=True)
    # A hub snapshot: the commit is known from the cache folder, the revision asked for is a branch.
    hub = target_mod.Target("org/toy", folder, json.loads((folder / "config.json").read_text()), revision="main", commit=COMMIT)
    ctx = context(installed(), model=str(folder), trust_remote_code=True)
    from dsocr_probe import codescan

    yield remote_code._pin_finding(ctx, hub, codescan.collect(folder))
    local = target_mod.resolve(str(folder))
    from dsocr_probe.probes.context import finding_of

    yield finding_of(trust.import_refusal(Options(trust_remote_code=True), local))
    yield finding_of(trust.import_refusal(Options(), local))


@scenario
def prerequisites(env):
    """A model that is not there: the first probe names it, the others say what they could not check."""
    for name in ("model_api", "remote_code", "processor", "batch", "step"):
        yield from probe(name, context(installed(), model="/nonexistent/dsocr-probe-model")).findings
    yield from probe("dataset", context(installed(), model="/nonexistent/dsocr-probe-model",
                                        train_config=_config(env.tmp(), data={"max_length": 64}),
                                        data=write_pages(env.tmp() / "train", ["x"]))).findings


# ---------------------------------------------------------------- model API and processor


@scenario
def model_api(env):
    from dsocr_probe.model import skeleton
    from dsocr_probe.inputs import target as target_mod
    from dsocr_probe.probes import model_api as api

    yield from probe("model_api", context(installed(), model=str(toy(env.tmp() / "m")))).findings
    # The checkpoint's files disagree about the model type: v1's processor_class, and a model_type of another family.
    yield from probe("model_api", context(installed(), model=str(env.v1_model))).findings
    other = env.tmp() / "llama"
    transformers.LlamaConfig(vocab_size=32, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                             num_attention_heads=2, num_key_value_heads=1).save_pretrained(str(other))
    (other / "tokenizer_config.json").write_text(json.dumps({"model_type": "qwen2"}))
    yield from probe("model_api", context(installed(), model=str(other))).findings
    # The checkpoint's files disagree about the model type the other way round: a class shipped nowhere on a
    # model type without a builder of ours, another model_type on v1's.
    unshipped = {"processor_config.json": json.dumps({"processor_class": "DeepseekVLV2Processor"})}
    yield from probe("model_api", context(installed(), model=str(toy(env.tmp() / "m", extra=unshipped)))).findings
    qwen = {"tokenizer_config.json": json.dumps({"model_type": "qwen2"})}
    yield from probe("model_api", context(installed(), model=str(toy(env.tmp() / "m", model_type="DeepseekOCR",
                                                                     extra=qwen)))).findings
    # auto_map names a class the file does not define: forward() is not read.
    missing = {"AutoConfig": "configuration_toy.ToyConfig", "AutoModel": "modeling_toy.NoSuchModel"}
    yield from probe("model_api", context(installed(), model=str(toy(env.tmp() / "m", auto_map=missing)))).findings
    # Every Auto class mapped, on a transformers that still has all of them (5.x removed AutoModelForVision2Seq).
    every = {"AutoConfig": "configuration_toy.ToyConfig",
             **dict.fromkeys(model_facts.AUTO_CLASSES, "modeling_toy.ToyModel")}
    with env.mp.context() as mp:
        if not hasattr(transformers, "AutoModelForVision2Seq"):
            mp.setattr(transformers, "AutoModelForVision2Seq", transformers.AutoModelForImageTextToText, raising=False)
        yield from probe("model_api", context(installed(), model=str(toy(env.tmp() / "m", auto_map=every)))).findings
    yield api.auto_class_finding([model_facts.AutoVerdict("AutoModel", False, "Unrecognized configuration class")])
    yield api._meta_finding(skeleton.Skeleton(config=None, cls=object, how="test", build_error="RuntimeError: meta tensors"))
    unknown = env.tmp() / "unknown"
    unknown.mkdir()
    (unknown / "config.json").write_text(json.dumps({"model_type": "dsocr_probe_unknown_type"}))
    yield refused(skeleton.load_config, target_mod.resolve(str(unknown)), Options())
    env.mp.setitem(skeleton.NATIVE_SINCE, "dsocr_probe_unknown_type", "9.9.0")
    yield refused(skeleton.load_config, target_mod.resolve(str(unknown)), Options())

    def refuse(*args, **kwargs):
        raise ImportError("cannot import name 'LlamaFlashAttention2' from 'transformers.models.llama.modeling_llama'")

    env.mp.setattr(transformers.AutoConfig, "from_pretrained", refuse)
    from dsocr_probe.inputs import pinning

    folder = toy(env.tmp() / "m")
    digest = pinning.content_digest(folder)
    pinned = target_mod.resolve(str(folder), digest)
    yield refused(skeleton.load_config, pinned, Options(trust_remote_code=True, revision=digest))


class _Tokenizer:
    """Just what the image-token check reads from a tokenizer."""

    bos_token, bos_token_id, eos_token, eos_token_id, unk_token_id = "<s>", 0, "</s>", 1, 3

    def __init__(self, ids: dict, pad: bool = True):
        self.ids = ids
        self.pad_token, self.pad_token_id = ("<pad>", 2) if pad else (None, None)

    def convert_tokens_to_ids(self, token):
        return self.ids.get(token, self.unk_token_id)

    def convert_ids_to_tokens(self, token_id):
        return next((t for t, i in self.ids.items() if i == token_id), None)

    def __len__(self):
        return 16


@scenario
def processor(env):
    from dsocr_probe.probes import processor as proc

    # The bare tokenizer refuses images, or (depending on the tokenizers release) ignores them silently.
    for error in ("TypeError: __call__() got an unexpected keyword argument 'images'", None):
        env.mp.setattr(proc, "_call_with_images", lambda processor, error=error: error)
        yield from probe("processor", context(installed(), model=str(env.v1_model))).findings

    def checkpoint(config: dict):
        return SimpleNamespace(config=config, read_json=lambda name: {}, model_type=config.get("model_type"))

    for config, tok in (({}, _Tokenizer({})), ({"image_token_id": 7}, _Tokenizer({"<image>": 5})),
                        ({}, _Tokenizer({"<image>": 5}, pad=False))):
        yield from proc._image_token(checkpoint(config), tok, tok, False)
    import tiny_families

    # A processor that takes images: a tiny LLaVA checkpoint, built offline.
    llava = tiny_families.llava(env.tmp() / "llava")
    yield from probe("processor", context(installed(), model=str(llava))).findings


# ---------------------------------------------------------------- training config


def _config(folder: Path, **sections) -> Path:
    path = folder / "training_config.yaml"
    path.write_text(yaml.safe_dump(sections))
    return path


PLAIN_COLLATOR = """
def collate(examples):
    return examples
"""
LOCAL_COLLATOR = """
def make():
    def collate(examples):
        return examples
    return collate


collate = make()
"""


def config_error(path: Path) -> Finding:
    """The finding a training config that cannot be read becomes."""
    from dsocr_probe.findings import InputError
    from dsocr_probe.inputs import trainconfig
    from dsocr_probe.probes.context import finding_of

    with pytest.raises(InputError) as error:
        trainconfig.load(path)
    return finding_of(error.value)


@scenario
def train_config_files(env):
    folder = env.tmp()
    yield config_error(folder / "missing.yaml")
    (folder / "latin1.yaml").write_bytes("training:\n  output_dir: répertoire\n".encode("latin-1"))
    yield config_error(folder / "latin1.yaml")
    (folder / "bad.yaml").write_text("training:\n  a: 1\n b: [\n")
    yield config_error(folder / "bad.yaml")
    (folder / "list.yaml").write_text("- 1\n- 2\n")
    yield config_error(folder / "list.yaml")
    (folder / "section.yaml").write_text("model: 5\n")
    yield config_error(folder / "section.yaml")
    (folder / "nproc.yaml").write_text(yaml.safe_dump({"nproc_per_node": 0, "training": {}}))
    yield config_error(folder / "nproc.yaml")
    yield from probe("train_config", context(installed(), model=str(env.v1_model))).findings  # no config at all


@scenario
def train_config_arguments(env):
    from dsocr_probe.probes import train_config as tc

    version = Version(INSTALLED_TRANSFORMERS)
    fields = tc.training_arguments_fields()
    training = {"optimizer": "adamw_torch", "evaluation_strategy": "epoch", "tokenizer": "t", "data_collator": "c",
                "learning_rat": 1e-4, "dsocr_no_such_argument": 1, "warmup_ratio": 0.1, "logging_dir": "logs"}
    # evaluation_strategy: removed on the current stack, deprecated (still accepted) on the legacy one; both, here.
    # warmup_ratio and logging_dir: gone from 5.15's arguments, as on the current stack.
    for has_it in (False, True):
        patched = {k: v for k, v in fields.items() if k not in ("evaluation_strategy", "warmup_ratio", "logging_dir")}
        if has_it:
            patched["evaluation_strategy"] = fields.get("eval_strategy", next(iter(fields.values())))
        env.mp.setattr(tc, "training_arguments_fields", lambda args_cls=None, patched=patched: patched)
        yield from tc.check_arguments(training, max(version, Version("4.46.0")))
    env.mp.undo()
    yield from tc._construct(context(installed(), device="cpu"), {"optim": "dsocr_no_such_optimizer"},
                             transformers.TrainingArguments)
    # The rule shapes the table has none of today: deprecated (still accepted), and never valid with a note.
    from dsocr_probe.knowledge.rules import ArgRule

    rules = {"dsocr_old_name": ArgRule("dsocr_old_name", "dsocr_new_name", introduced="4.40.0"),
             "dsocr_wrong_name": ArgRule("dsocr_wrong_name", "dsocr_right_name", note="a float in [0, 1) is read as a ratio")}
    env.mp.setattr(tc, "ARG_RULES", rules)
    patched = {**fields, "dsocr_old_name": next(iter(fields.values()))}
    env.mp.setattr(tc, "training_arguments_fields", lambda args_cls=None: patched)
    yield from tc.check_arguments({"dsocr_old_name": 1, "dsocr_wrong_name": 2}, max(version, Version("4.46.0")))
    env.mp.undo()


@scenario
def train_config_values(env):
    """Values the arguments class would store and the run then trips on, and keys nobody reads."""
    from dsocr_probe.inputs import training_values
    from dsocr_probe.probes import train_config as tc
    from dsocr_probe.probes.train_config_values import value_findings
    from dsocr_probe.inputs.trainconfig import TrainConfig

    training = {"learning_rate": "2e-4", "bf16": "false", "optim": "adamw", "report_to": "none",
                "lr_scheduler_type": "dsocr_no_such_schedule_zzz", "per_device_train_batch_size": 0,
                "num_train_epochs": None, "max_steps": "four", "per_device_eval_batch_size": 2.5, "fp16": True}
    yield from value_findings(training_values.check(training, transformers.TrainingArguments))
    yield from value_findings(training_values.check({"bf16": True, "fp16": True, "seed": "x", "warmup_ratio": 2,
                                                     "optim": "adamw_torhc", "dataloader_num_workers": 1.5},
                                                    transformers.TrainingArguments))
    cfg = TrainConfig(env.tmp() / "c.yaml", unknown=[("top level", "trainig", "training"), ("top level", "wandb", None),
                                                      ("data", "max_lenght", "max_length")])
    yield from tc._unknown_keys(cfg)


OLD_TRAINERS = """
from transformers import Trainer


class LossOnly(Trainer):
    def compute_loss(self, model, inputs, return_outputs=False):
        return model(**inputs).loss


class StepOnly(Trainer):
    def training_step(self, model, inputs):
        return super().training_step(model, inputs)


class NotATrainer:
    pass
"""


@scenario
def train_config_trainer(env):
    from dsocr_probe.probes import train_config as tc
    from dsocr_probe.inputs.trainconfig import TrainConfig

    folder = env.tmp()
    (folder / "dsocr_i18n_old_trainers.py").write_text(OLD_TRAINERS)
    for spec in ("dsocr_i18n_old_trainers:LossOnly", "dsocr_i18n_old_trainers:StepOnly",
                 "dsocr_i18n_old_trainers:NotATrainer", "dsocr_no_such_module_here:Trainer"):
        cfg = TrainConfig(folder / "c.yaml", trainer=spec)
        found = []
        gen = tc._trainer(cfg, Version("4.46.0"))
        try:
            while True:
                found.append(next(gen))
        except StopIteration:
            pass
        yield from found
    (folder / "trainer.yaml").write_text("trainer: [1, 2]\ntraining: {}\n")
    yield config_error(folder / "trainer.yaml")
    from dsocr_probe.findings import InputError
    from dsocr_probe.model import trainrun
    from dsocr_probe.probes import step
    from dsocr_probe.probes.context import finding_of

    (folder / "dsocr_i18n_two_args.py").write_text("class Collate:\n    def __init__(self, tokenizer, mode):\n        pass\n")
    for spec in ("dsocr_no_such_module_here:collate", "dsocr_i18n_two_args:Collate"):
        with pytest.raises(InputError) as error:
            trainrun.collator(context(installed()), TrainConfig(folder / "c.yaml", data={"collator": spec}), None, None)
        yield finding_of(error.value)
    data = folder / "data"
    write_pages(data / "train", ["one", "two"])
    for image in (data / "train" / "images").iterdir():
        image.write_bytes(b"not an image")
    yield stopped(step._rows, context(installed(), model=str(env.v1_model), data=data))


@scenario
def train_config_project(env):
    """The seed team's mistakes in one config, on a Windows machine (spawned DataLoader workers)."""
    from dsocr_probe.probes import train_config as tc
    from dsocr_probe.probes.train_config_data import collator_and_workers
    from dsocr_probe.probes.train_config_lora import lora
    from dsocr_probe.inputs.trainconfig import TrainConfig

    folder = env.tmp()
    write_pages(folder / "data" / "train", ["first", "second", "third"])
    (folder / "dsocr_i18n_local_collate.py").write_text(LOCAL_COLLATOR)
    cfg = _config(folder, model={"auto_class": "AutoModelForVision2Seq"},
                  lora={"r": 8, "task_type": "SEQ_2_SEQ_LM"},
                  data={"train_dir": str(folder / "data" / "train"), "collator": "dsocr_i18n_local_collate:collate"},
                  training={"per_device_train_batch_size": 4, "gradient_accumulation_steps": 4, "num_train_epochs": 50,
                            "dataloader_num_workers": 2})
    windows = EnvFacts(python="3.11.9", os="Windows", mp_start_method="spawn", versions=installed().versions, injected=True)
    yield from probe("train_config", context(windows, model=str(env.v1_model), train_config=cfg)).findings
    linux = context(installed(), model=str(env.v1_model), train_config=cfg)
    yield from probe("train_config", linux).findings  # the same collator with fork: a warning
    config = TrainConfig(cfg, data={"collator": "dsocr_i18n_no_such_module:collate"})
    yield from collator_and_workers(linux, config)
    (folder / "dsocr_i18n_plain_collate.py").write_text(PLAIN_COLLATOR)  # a module-level function: it pickles
    yield from collator_and_workers(linux, TrainConfig(cfg, data={"collator": "dsocr_i18n_plain_collate:collate"}))
    # No collator of their own: the verified builder and the rows are pickled for the workers.
    yield from collator_and_workers(linux, TrainConfig(cfg, data={}, training={"dataloader_num_workers": 2,
                                                                               "remove_unused_columns": False}))
    # ... and a builder holding a local function.
    from dsocr_probe.model import loading

    holds_a_function = loading.builder_for(linux)
    holds_a_function.hook = lambda batch: batch
    env.mp.setattr(loading, "builder_for", lambda ctx: holds_a_function)
    yield from collator_and_workers(linux, TrainConfig(cfg, data={}, training={"dataloader_num_workers": 2,
                                                                               "remove_unused_columns": False}))
    env.mp.undo()
    # The builder cannot be made: the workers are not checked, and the reason is named.
    yield from collator_and_workers(context(installed(), model="/nonexistent/dsocr-probe-model"),
                                    TrainConfig(cfg, data={}, training={"dataloader_num_workers": 2}))
    no_data = context(installed(), model=str(env.v1_model))
    yield from tc._batch_math(no_data, TrainConfig(cfg, training={"per_device_train_batch_size": 1}))
    yield from tc._batch_math(linux, TrainConfig(cfg, training={"per_device_train_batch_size": 1, "num_train_epochs": 2}))
    yield from lora(linux, TrainConfig(cfg, lora={"task_type": "TOKEN_CLS"}))
    # An Auto class when the checkpoint maps none of them.
    odd = toy(env.tmp() / "odd", auto_map={"AutoConfig": "configuration_toy.ToyConfig",
                                           "AutoModelForTokenClassification": "modeling_toy.ToyModel"})
    yield from tc._auto_class(context(installed(), model=str(odd)), TrainConfig(cfg, model={"auto_class": "AutoModel"}))


@scenario
def train_config_lora_targets(env):
    from dsocr_probe.probes.train_config_lora import lora
    from dsocr_probe.probes.train_config_values import value_findings
    from dsocr_probe.inputs.trainconfig import TrainConfig

    names = ["model", "model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj",
             "model.sam_model.blocks.0.attn.qkv", "model.vision_model.layers.0.self_attn.qkv_proj"]
    path = env.tmp() / "c.yaml"
    for targets in (["dsocr_nothing"], ["qkv", "qkv_proj"], ["q_proj", "qkv"], ["q_proj", "v_proj"]):
        ctx = context(installed(), model=str(env.v1_model))
        ctx.__dict__["_cache_skeleton"] = (SimpleNamespace(module_names=names), None)  # a built skeleton, no import
        yield from lora(ctx, TrainConfig(path, lora={"target_modules": targets, "task_type": "CAUSAL_LM"}))
    ctx = context(installed(), model=str(env.v1_model))
    ctx.__dict__["_cache_skeleton"] = (SimpleNamespace(module_names=[]), None)  # could not be built without weights
    yield from lora(ctx, TrainConfig(path, lora={"target_modules": ["q_proj"]}))
    # Untrusted remote code: the skeleton is refused, and that refusal is the cause.
    yield from lora(context(installed(), model=str(env.v1_model)), TrainConfig(path, lora={"target_modules": ["q_proj"]}))
    # peft's own refusal on the weightless model: a module type LoRA cannot adapt.
    ctx = context(installed(), model=str(env.v1_model))
    ctx.__dict__["_cache_skeleton"] = (SimpleNamespace(module_names=["model", "model.norm"], model=_Normed()), None)
    yield from lora(ctx, TrainConfig(path, lora={"target_modules": ["norm"], "task_type": "CAUSAL_LM"}))
    # Values peft would take and training would not.
    from dsocr_probe.inputs import training_values

    yield from value_findings(training_values.lora_check({"r": 0, "lora_alpha": "16", "bias": "some"}))
    # A causal task type on an encoder-decoder checkpoint.
    t5 = env.tmp() / "t5"
    _tiny_t5().save_pretrained(str(t5))
    yield from lora(context(installed(), model=str(t5)), TrainConfig(path, lora={"task_type": "CAUSAL_LM"}))


class _Normed(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = torch.nn.LayerNorm(4)


# ---------------------------------------------------------------- dataset


@scenario
def dataset(env):
    from dsocr_probe.inputs import dataset as dataset_mod

    root = env.tmp()
    write_pages(root / "train", ["one", "two", "shared"])
    write_pages(root / "val", ["shared"])
    rows = json.loads((root / "train" / "metadata.json").read_text(encoding="utf-8"))
    rows += [{"image_path": f"images/gone_{i}.png", "text": "gone"} for i in range(51)]  # more than the table lists
    rows += [rows[0], {"image_path": "images/tiny.png", "text": "tiny"}]
    from PIL import Image

    Image.new("RGB", (8, 8), "white").save(root / "train" / "images" / "tiny.png")
    (root / "train" / "metadata.json").write_text(json.dumps(rows), encoding="utf-8")
    cfg = _config(env.tmp(), data={"max_length": 2})
    yield from probe("dataset", context(installed(), model=str(env.v1_model), data=root, train_config=cfg)).findings
    # A builder that cannot be made (an unknown mode): only the targets are counted.
    cfg = _config(env.tmp(), data={"max_length": 2, "mode": "no-such-mode"})
    yield from probe("dataset", context(installed(), model=str(env.v1_model), data=root, train_config=cfg)).findings
    for data in ({"max_length": 100000}, {"max_length": 100000, "mode": "no-such-mode"}):  # the lengths fit
        cfg = _config(env.tmp(), data=data)
        found = probe("dataset", context(installed(), model=str(env.v1_model), data=root, train_config=cfg)).findings
        yield from (f for f in found if f.code == "dataset.lengths")
    yield from probe("dataset", context(installed(), model=str(env.v1_model))).findings  # no data given
    yield refused(dataset_mod.load, root / "nowhere")
    yield refused(dataset_mod.load, env.tmp())


# ---------------------------------------------------------------- batch

COLLATORS = """
def images_kw(examples):
    raise TypeError("LlamaTokenizerFast.__call__() got an unexpected keyword argument 'images'")


def broken(examples):
    raise ValueError("example 0 (images/00001.png): cannot decode image")
"""


@scenario
def batch_probe(env):
    folder = env.tmp()
    write_pages(folder / "train", ["first page", "second page"])
    (folder / "dsocr_i18n_collators.py").write_text(COLLATORS)
    for collator in ("dsocr_i18n_collators:images_kw", "dsocr_i18n_collators:broken", "dsocr_i18n_nowhere:collate"):
        cfg = _config(folder, data={"train_dir": str(folder / "train"), "collator": collator},
                      training={"remove_unused_columns": False})
        yield from probe("batch", context(installed(), model=str(env.v1_model), train_config=cfg)).findings
    empty = env.tmp()
    (empty / "metadata.json").write_text("[]")
    yield from probe("batch", context(installed(), model=str(env.v1_model), data=empty)).findings
    yield from probe("batch", context(installed(), model=str(env.v1_model))).findings  # no data given
    yield from probe("batch", context(installed(), model=str(env.v1_model), data=folder / "train")).findings
    env.mp.setattr(model_facts, "forward_params", lambda target, sk: (None, "no AutoModel entry in auto_map"))
    yield from probe("batch", context(installed(), model=str(env.v1_model), data=folder / "train")).findings


@scenario
def batch_keys_and_dtypes(env):
    from dsocr_probe.probes import batch

    v1_forward = ["input_ids", "labels", "images", "images_seq_mask", "images_spatial_crop"]
    yield from batch.check_keys({"pixel_values": 0, "input_ids": 0, "labels": 0}, v1_forward)
    yield from batch.check_keys({"dsocr_extra": 0, "input_ids": 0, "labels": 0}, ["input_ids", "labels", "**kwargs"])
    yield from batch.check_keys({"dsocr_extra": 0, "input_ids": 0, "labels": 0}, ["input_ids", "labels"])
    yield from batch.check_keys({"pixel_values": 0, "input_ids": 0}, ["input_ids", "images", "**kwargs"])
    yield from batch.check_keys({"input_ids": 0, "labels": 0}, ["input_ids", "labels"])
    images = [(torch.zeros(1, 3, 4, 4, dtype=torch.bfloat16), torch.zeros(1, 3, 8, 8, dtype=torch.bfloat16))]
    ctx = context(installed(), model=str(env.v1_model), device="cpu")
    yield from batch._dtype_findings(ctx, {"images": images, "images_seq_mask": torch.zeros(1, 4, dtype=torch.long)})


@scenario
def batch_image_features(env):
    """Image slots against the features the vision path yields, for a processor builder and a collator of the team's own."""
    from dsocr_probe.model.meta_run import FeatureCount
    from dsocr_probe.probes import batch

    count = FeatureCount(290, [145, 145], "DeepseekOcr2ForConditionalGeneration.get_image_features", "list")
    flat = FeatureCount(290, None, "Qwen2VLForConditionalGeneration.get_image_features", "tensor [290, 32]")
    processor_builder = SimpleNamespace(processor=SimpleNamespace())
    yield batch._compare(processor_builder, [257, 257], count, 7, "config.image_token_id")
    yield batch._compare(object(), [257, 257], flat, 7, "config.image_token_id")
    matched = batch._compare(processor_builder, [145, 145], count, 7, "config.image_token_id")
    yield matched
    checks = [messages.M("label checks (a supervised token per sample, none on padding)")]
    yield batch.layout_finding(matched, None, checks)
    yield batch.layout_finding(batch._compare(object(), [257, 257], flat, 7, "config.image_token_id"), None, checks)


def layout_finding(problem) -> Finding:
    """What the batch probe reports for a problem its validators find (as in probes/batch.py)."""
    return fail(problem.code, problem.variant, params=dict(problem.params))


@scenario
def batch_layout(env):
    from transformers import AutoTokenizer

    from dsocr_probe import DeepseekOCRCollator
    from dsocr_probe.collators import deepseek_ocr2, processor, seq2seq, suffix
    from dsocr_probe.collators.base import check_labels, labels_on_image_tokens
    from dsocr_probe.collators.deepseek_ocr_v1_checks import validate_layout

    pages = write_pages(env.tmp() / "train", ["first page", "second page"])
    builder = DeepseekOCRCollator(AutoTokenizer.from_pretrained(str(env.v1_model)), mode="tiny")
    examples = [{"image": pages / "images" / f"{i:05d}.png", "text": t} for i, t in ((1, "first page"), (2, "second page"))]

    def tampered(how: str) -> dict:
        b = builder(examples)
        mask = b["images_seq_mask"]
        if how == "no-bos":
            b["input_ids"][:, 0] = builder.eos_token_id
        elif how == "slots":
            b["images_seq_mask"][0, int(mask[0].nonzero()[-1])] = False
        elif how == "labels":
            b["labels"][mask] = b["input_ids"][mask]
        elif how == "int-mask":
            b["images_seq_mask"] = mask.long()
        elif how == "first-text-only":
            b["images"][0] = (torch.zeros_like(b["images"][0][0]), torch.zeros_like(b["images"][0][1]))
        return b

    problems = []
    for how in ("no-bos", "slots", "labels", "int-mask", "first-text-only"):
        problems += validate_layout(tampered(how), bos_token_id=0)
    problems += validate_layout(tampered("none"), pixel_dtype=torch.bfloat16)
    problems += validate_layout({"input_ids": torch.zeros(1, 4, dtype=torch.long)})
    problems += validate_layout({"input_ids": [1], "images": [], "images_seq_mask": 0, "images_spatial_crop": 0})
    labels = torch.tensor([[-100, -100], [5, 6]])
    problems += check_labels({"labels": labels, "attention_mask": torch.tensor([[1, 1], [1, 0]])})
    problems += check_labels({}) + check_labels({"labels": [1]})
    problems += _v1_structure_problems(builder(examples), builder)
    problems += _family_validator_problems(deepseek_ocr2, processor, seq2seq, suffix)
    problems += labels_on_image_tokens({"input_ids": torch.tensor([[7, 7, 5]]), "labels": torch.tensor([[7, 7, 5]])}, 7)
    yield from (layout_finding(p) for p in problems)


def _v1_structure_problems(good: dict, builder) -> list:
    """What validate_layout and the v1 builder find in batches whose tensors are malformed."""
    from dsocr_probe.collators.deepseek_ocr_v1_checks import validate_layout

    problems = []
    b = dict(good, images_seq_mask=good["images_seq_mask"][:, :-1], images_spatial_crop=good["images_spatial_crop"].float(),
             images=good["images"][:1])
    problems += validate_layout(b)
    b = dict(good, images=[good["images"][0], good["images"][1][0]])
    problems += validate_layout(b)
    (patches, view), second = good["images"]
    wide = torch.ones(1, 3, view.shape[-1], view.shape[-1] + 1)
    problems += validate_layout(dict(good, images=[(patches, wide), second]))
    crops = torch.ones(3, 3, 4, 4)
    problems += validate_layout(dict(good, images=[(crops, view), second], images_spatial_crop=torch.tensor([[2, 2], [1, 1]])))
    many = good["images_seq_mask"].clone()
    many[0, -1] = True
    ids = good["input_ids"].clone()
    ids[0, 0] = builder.image_token_id  # an image token on bos, outside the image slots
    problems += validate_layout(dict(good, images_seq_mask=many, input_ids=ids), image_token_id=builder.image_token_id,
                                bos_token_id=None)
    problems += validate_layout(dict(good, images=[(patches.half(), view), second]), bos_token_id=None)
    small = (patches, torch.ones(1, 3, 8, 8))
    problems += [p for p in builder.validate(dict(good, images=[small, second])) if p.variant == "view-size"]
    return problems


def _family_validator_problems(deepseek_ocr2, processor, seq2seq, suffix) -> list:
    """The problems the other families' builders find, from validators run on hand-made batches."""
    ids = torch.tensor([[1, 9, 9, 4], [1, 4, 4, 4]])
    labels = torch.tensor([[-100, -100, 9, 4], [-100, 4, 4, 4]])
    problems = []
    proc = processor.ProcessorCollator.__new__(processor.ProcessorCollator)
    proc.image_token, proc.image_token_id, proc.dtype = "<image>", 9, torch.float32
    problems += proc.validate({"labels": labels})
    problems += proc.validate({"input_ids": ids, "labels": labels, "pixel_values": torch.zeros(2, 3, dtype=torch.float16)})
    s2s = seq2seq.Seq2SeqCollator.__new__(seq2seq.Seq2SeqCollator)
    s2s.image_token_id = 9
    problems += s2s.validate({"input_ids": ids, "labels": labels})
    sfx = suffix.SuffixCollator.__new__(suffix.SuffixCollator)
    sfx.image_token, sfx.image_token_id, sfx.dtype = "<image>", 9, torch.float32
    problems += sfx.validate({"input_ids": ids, "labels": labels})
    problems += sfx.validate({"input_ids": ids, "labels": labels, "token_type_ids": torch.zeros_like(ids)})

    class OneSlotViews(deepseek_ocr2.DeepseekOCR2Collator):
        global_size = tile_size = 16

        def __init__(self):
            self.image_token, self.image_token_id, self.dtype = "<image>", 9, torch.float32

        def slots_per_view(self, size):
            return 1

    ocr2 = OneSlotViews()
    problems += ocr2.validate({"input_ids": ids, "labels": labels})
    problems += ocr2.validate({"input_ids": ids, "labels": labels, "num_local_patches": [1]})
    problems += ocr2.validate({"input_ids": ids, "labels": labels, "num_local_patches": [1, 0],
                               "pixel_values": torch.zeros(3, 3, 4, 4), "pixel_values_local": torch.zeros(2, 3, 4, 4)})
    return problems


# ---------------------------------------------------------------- loading and target


@scenario
def loading_failures(env):
    from dsocr_probe.inputs import target as target_mod

    native = env.tmp() / "native"
    native.mkdir()
    (native / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 8}))
    ctx = context(installed(), model=str(native))
    yield refused(loading.load_tokenizer, ctx)
    yield refused(loading.load_processor, ctx)
    yield refused(loading.load_processor, ctx)  # a later probe: not checked, because of it
    yield refused(loading.parse_dtype, "int8", "model.torch_dtype")
    yield refused(loading.model_class, context(installed(), model=str(env.v1_model)))  # untrusted remote code
    config_only = toy(env.tmp() / "m", auto_map={"AutoConfig": "configuration_toy.ToyConfig"})
    yield refused(loading.model_class, context(installed(), model=str(config_only), trust_remote_code=True, allow_unpinned=True))
    yield refused(loading.load_model, context(installed(), model=str(env.v1_model), trust_remote_code=True, allow_unpinned=True), "cpu", torch.float32)
    yield refused(loading.model_class, context(installed(), model=str(env.v1_model), trust_remote_code=True))  # unpinned
    for what, parts in (("tokenizer", ["tokenizer_config.json auto_map"]), ("processor", ["processor_config.json auto_map"])):
        yield refused(loading._refuse_untrusted, context(installed(), model=str(env.v1_model)), parts, what)
        yield refused(loading._refuse_untrusted, context(installed(), model=str(env.v1_model), trust_remote_code=True),
                      parts, what)
    cfg = _config(env.tmp(), data={"prompt": "Free OCR."})
    yield refused(loading.builder_for, context(installed(), model=str(env.v1_model), train_config=cfg))

    (native / "model.safetensors").write_bytes(b"")

    class Refuses:
        @staticmethod
        def from_pretrained(path, **kwargs):
            raise ImportError("This modeling file requires the following packages that were not found: addict")

    class Fails:
        @staticmethod
        def from_pretrained(path, **kwargs):
            raise ValueError("Unrecognized configuration class <class 'ToyConfig'> for this kind of AutoModel")

    class NoKernels:
        @staticmethod
        def from_pretrained(path, **kwargs):
            return SimpleNamespace(to=NoKernels.to)

        @staticmethod
        def to(device):
            raise RuntimeError("CUDA error: no kernel image is available for execution on the device")

    for cls in (Refuses, Fails, NoKernels):
        env.mp.setattr(loading, "model_class", lambda ctx, cls=cls: (cls, f"{cls.__name__} (test)"))
        yield refused(loading.load_model, context(installed(), model=str(native)), "cuda", torch.float32)
    env.mp.undo()
    # The hub cache is read only, never downloaded from.
    yield refused(target_mod.resolve, "dsocr-probe-tests/not-in-any-cache", "main")
    yield refused(target_mod.resolve, "dsocr-probe-tests/not-in-any-cache")
    yield refused(target_mod.resolve, str(env.tmp()))
    broken = env.tmp()
    (broken / "config.json").write_text("{model_type")
    yield refused(target_mod.resolve, str(broken))
    snapshot = env.tmp() / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps({"model_type": "llama"}))
    yield refused(target_mod.resolve, str(snapshot), "b" * 40)


# ---------------------------------------------------------------- training step, without a real model


def _optimizer():
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)


class _Raises(torch.nn.Module):
    def __init__(self, exc: Exception):
        super().__init__()
        self.exc = exc

    def forward(self, **batch):
        raise self.exc


class _NoLoss(torch.nn.Module):
    def forward(self, **batch):
        return {"logits": torch.zeros(1)}


class _Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.q_proj = torch.nn.Linear(2, 2)


class _Towers(torch.nn.Module):
    """A language model and, with ``vision``, a vision tower whose projections share the names."""

    def __init__(self, vision: bool):
        super().__init__()
        self.layers = torch.nn.ModuleList([_Block()])
        if vision:
            self.vision_model = _Block()


@scenario
def step_parts(env):
    from dsocr_probe.model import gradients
    from dsocr_probe import plugin
    from dsocr_probe.model.measure import Measure, forecast
    from dsocr_probe.probes import PROBES, step_learning, step_memory, step_training

    from dsocr_probe.model.trainer_watch import StepRecord

    described = {"trainer": "transformers.trainer.Trainer", "trainer from": "default", "collator": "team.collate.Collator",
                 "collator from": "data.collator: team.collate:Collator"}
    run = SimpleNamespace(describe=lambda: described)
    for exc in (RuntimeError("a leaf Variable that requires grad is being used in an in-place operation."),
                ValueError("shape mismatch"),
                TypeError("TeamTrainer.compute_loss() got an unexpected keyword argument 'num_items_in_batch'"),
                ValueError("The model did not return a loss from the inputs, only the following keys: logits."),
                ValueError("DeepseekOCRForCausalLM does not support gradient checkpointing.")):
        yield step_training.train_failed(run, exc).finding
    for vision in (True, False):
        yield step_learning.wrap_failed(ValueError("Target modules {'q_proj'} not found in the base model."),
                                        [n for n, _ in _Towers(vision).named_modules()]).finding
    yield step_learning.wrap_failed(ValueError("`r` should be a positive integer value but the value passed is 0"),
                                    []).finding
    class _Refuses:
        trainer_class = transformers.Trainer

        def arguments_with(self, extra, keep_requested=True):
            return None

        def trainer(self, arguments=None):
            raise ValueError("You have set `args.eval_strategy` to steps but you didn't pass an `eval_dataset`")

    yield stopped(step_training.trainer_init, _Refuses(), str(env.tmp()))
    oom = step_training.Trained([], 10, 0)
    oom.oom = "OutOfMemoryError: CUDA out of memory."
    yield step_training.accumulation_finding(oom, 4, 2)
    yield step_learning.loss_finding(StepRecord(losses=[math.nan]))
    for losses, changed in (([2.0] * 5, True), ([2.0, 1.5, 1.0, 0.6, 0.3], True), ([2.0] * 5, False)):
        yield step_learning.learning_finding(StepRecord(losses=losses, times=[0.1] * 5, learning_rates=[2e-4] * 5,
                                                        adapters_changed=changed), {})

    lm, vision = "model.layers.0.self_attn.q_proj", "model.vision_model.layers.0.q_proj"
    reports = [
        (gradients.GradientReport([gradients.AdapterGrad(lm, math.inf, finite=False), gradients.AdapterGrad(vision, 0.5)]), False),
        (gradients.GradientReport([gradients.AdapterGrad(vision, None)]), False),  # vision only
        (gradients.GradientReport([gradients.AdapterGrad(lm, None), gradients.AdapterGrad("model.layers.1.mlp.up_proj", None)]), True),
        (gradients.GradientReport([gradients.AdapterGrad(lm, None)]), False),
        (gradients.GradientReport([gradients.AdapterGrad(lm, 0.5), gradients.AdapterGrad(vision, None)],
                                  frozen_with_grad=["model.embed_tokens.weight"],
                                  trainable_without_grad=["model.lm_head.weight"]), False),
        (gradients.GradientReport([gradients.AdapterGrad(lm, 0.5), gradients.AdapterGrad("model.layers.1.mlp.up_proj", None)]), False),
    ]
    for names in ([lm, vision], [lm]):  # the fix excludes the vision tower only where it has the same names
        for report, reentrant in reports:
            no_grad = {vision} if report is reports[4][0] else set()
            yield from step_learning.gradient_findings(report, no_grad, names, reentrant)
    # An expert the batch did not route to: no gradient, and nothing wrong.
    expert = "model.layers.1.mlp.experts.5.up_proj"
    experts = gradients.GradientReport([gradients.AdapterGrad(lm, 0.5), gradients.AdapterGrad(expert, None)])
    yield from step_learning.gradient_findings(experts, set(), [lm, expert])

    gib = 2**30
    measures = [Measure(2, 100, 3 * gib, 0.2, slots=60), Measure(1, 100, 2 * gib, 0.1, slots=60)]
    need = forecast(measures, 2, 100, None, slots=60).peak_bytes
    for capacity in (need // 2, int(need * 1.05)):  # more than the GPU has; within 10 % of it
        env.mp.setattr(step_memory, "capacity_bytes", lambda device, capacity=capacity: capacity)
        for has_config, training in ((False, {}), (True, {"per_device_train_batch_size": 2}), (True, {})):
            yield from step_memory.cost_findings(measures, 2, "cuda:0", training, has_config)
    yield step_memory.oom_finding(None, "OutOfMemoryError: CUDA out of memory.", "cuda:0", None, {})
    yield step_memory.oom_finding(4, "OutOfMemoryError: CUDA out of memory.", "cuda:0", measures[1],
                                  {"per_device_train_batch_size": 4}, length=100)
    yield step_memory.oom_finding(4, "OutOfMemoryError: CUDA out of memory.", "cuda:0", None,
                                  {"per_device_train_batch_size": 4})
    for spec in PROBES:
        if spec.time_limited:
            yield runner.timed_out(spec, 600.0)
            yield runner._died(spec, -9)


def _tiny_t5() -> transformers.T5Config:
    return transformers.T5Config(vocab_size=32, d_model=8, d_kv=4, d_ff=16, num_layers=1, num_heads=2,
                                 decoder_start_token_id=0)


class _StrictLlama(transformers.LlamaForCausalLM):
    def forward(self, input_ids=None, attention_mask=None, labels=None):
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


@scenario
def step_task_type(env):
    """A seq2seq task type on a decoder-only model (a tiny random Llama), a causal one on an encoder-decoder (a tiny
    T5), both built in memory."""
    from dsocr_probe.probes import step_learning

    config = transformers.LlamaConfig(vocab_size=32, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=2)
    ids = torch.ones(1, 4, dtype=torch.long)
    batch = {"input_ids": ids, "labels": ids}
    # Its forward swallows decoder_input_ids in **kwargs; a strict one (as DeepSeek-OCR v1's) fails on them.
    for model, targets in ((transformers.LlamaForCausalLM(config), ["q_proj"]), (_StrictLlama(config), ["q_proj"]),
                           (transformers.LlamaForCausalLM(config), ["dsocr_no_such_module"])):
        lora_kwargs = {"r": 2, "target_modules": targets, "task_type": "SEQ_2_SEQ_LM"}
        yield from step_learning.task_type(model, lora_kwargs, batch, contextlib.nullcontext)
    t5 = transformers.T5ForConditionalGeneration(_tiny_t5())
    yield from step_learning.task_type(t5, {"r": 2, "target_modules": ["q"], "task_type": "CAUSAL_LM"}, batch,
                                       contextlib.nullcontext)
    yield from probe("step", context(installed(), model=str(env.v1_model), trust_remote_code=True, allow_unpinned=True,
                                     device="cpu")).findings


@scenario
def step_demo(env):
    """The step probe's passing findings on this stack's demo model: gradient accumulation, val rows to evaluate."""
    from dsocr_probe.demo.target import demo_target

    demo = demo_target()
    if not any(demo.path.glob("*.safetensors")):
        return
    config = yaml.safe_load((demo.path / "training_config.yaml").read_text(encoding="utf-8"))
    config["training"].update(gradient_accumulation_steps=2, eval_strategy="steps", eval_steps=100)
    path = env.tmp() / "training_config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    yield from probe("step", context(trust_remote_code=True, train_config=path, device="cpu")).findings


@scenario
def step_build_parts(env):
    """What stops the run before it trains: a config without a model (dsocr-train), a part of the run that cannot
    be made (the step probe)."""
    from dsocr_probe import train_lora
    from dsocr_probe.findings import InputError
    from dsocr_probe.model import trainrun
    from dsocr_probe.probes import step
    from dsocr_probe.probes.context import finding_of

    config = env.tmp() / "c.yaml"
    config.write_text("model: {}\ntraining: {}\n", encoding="utf-8")
    with pytest.raises(InputError) as error:
        train_lora.build(train_lora.parse_args(["--config", str(config)]))
    yield finding_of(error.value)
    for stage, name in (("arguments", "TrainingArguments"), ("collator", "team.collate:Collator")):
        def refuse(*args, stage=stage, name=name, **kwargs):
            raise trainrun.BuildError(stage, name) from ValueError("learning_rate must be a number")

        env.mp.setattr(trainrun, "build", refuse)
        yield stopped(step._build, context(installed()), "cpu", None, {}, [], None, {}, [])


REFUSING_COLLATOR = """
class Collate:
    def __init__(self, tokenizer):
        raise ValueError("mode must be one of tiny, small, base")


def collate(examples):
    return examples
"""


@scenario
def train_script_build(env):
    """dsocr-train on a tiny Llama checkpoint: no rows, arguments, a collator or LoRA the run cannot make; and the
    Trainer the step probe makes from a run that builds."""
    import tiny_families
    from dsocr_probe import train_lora
    from dsocr_probe.probes import step_training

    model = env.tmp() / "llama"
    config = transformers.LlamaConfig(vocab_size=tiny_families.VOCAB, hidden_size=8, intermediate_size=16,
                                      num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1)
    transformers.LlamaForCausalLM(config).save_pretrained(str(model))
    tiny_families.tokenizer().save_pretrained(str(model))
    folder = env.tmp()
    (folder / "dsocr_i18n_refusing_collate.py").write_text(REFUSING_COLLATOR)
    data = write_pages(folder / "train", ["one", "two"])
    lora = {"r": 2, "target_modules": ["q_proj"], "task_type": "CAUSAL_LM"}

    def build(training=None, data_section=None, lora_section=lora, rows=True):
        path = _config(folder, model={"name": str(model)}, lora=lora_section, data=data_section or {},
                       training={"report_to": "none", **(training or {})})
        return train_lora.build(train_lora.parse_args(["--config", str(path), "--device", "cpu",
                                                       *(["--data", str(data)] if rows else [])]))

    yield refused(build, rows=False)
    yield refused(build, {"optim": "dsocr_no_such_optimizer"})
    yield refused(build, data_section={"collator": "dsocr_i18n_refusing_collate:Collate"})
    yield refused(build, data_section={"collator": "dsocr_i18n_refusing_collate:collate"}, lora_section={"r": 0})
    run = build(data_section={"collator": "dsocr_i18n_refusing_collate:collate"})
    yield step_training.trainer_init(run, str(env.tmp()))


# ---------------------------------------------------------------- hostile inputs


@scenario
def dataset_hostile(env):
    from dsocr_probe.inputs import dataset as dataset_mod

    root = env.tmp()
    write_pages(root / "train", ["one"])
    write_pages(root / "val", ["two"])
    write_pages(root / "validation", ["three"])  # the same split twice
    rows = json.loads((root / "train" / "metadata.json").read_text(encoding="utf-8"))
    page = rows[0]["image_path"]
    far = env.tmp()
    write_pages(far, ["far away"])
    far_page = far / json.loads((far / "metadata.json").read_text(encoding="utf-8"))[0]["image_path"]
    rows += [{"image_path": page.replace("/", "\\"), "text": "windows"},
             {"image_path": os.path.relpath(far_page, root / "train"), "text": "outside"}]
    (root / "train" / "metadata.json").write_text(json.dumps(rows), encoding="utf-8")
    yield from probe("dataset", context(installed(), model=str(env.v1_model), data=root)).findings
    empty = env.tmp()
    (empty / "metadata.json").write_text("[]")
    yield from probe("dataset", context(installed(), model=str(env.v1_model), data=empty)).findings
    only_val = env.tmp()
    write_pages(only_val / "val", ["two"])
    yield from probe("dataset", context(installed(), model=str(env.v1_model), data=only_val)).findings
    yield refused(dataset_mod.load, empty / "metadata.json")
    (empty / "data.zip").write_bytes(b"PK")
    yield refused(dataset_mod.load, empty / "data.zip")


@scenario
def reading_timeouts(env):
    import importlib
    import threading

    release = threading.Event()

    def hangs(ctx):
        release.wait(30)
        yield from ()

    try:
        for name in ("dataset", "train_config", "remote_code"):
            env.mp.setattr(importlib.import_module(f"dsocr_probe.probes.{name}"), "run", hangs)
            yield from probe(name, context(installed(), timeout_s=0.2)).findings
    finally:
        release.set()


# ---------------------------------------------------------------- the checks


@pytest.fixture(scope="module")
def findings(tmp_path_factory, v1_model) -> list[tuple[str, Finding]]:
    out = []
    for name, make in SCENARIOS.items():
        with pytest.MonkeyPatch.context() as mp:
            out += [(name, f) for f in make(Env(tmp_path_factory, v1_model, mp))]
    return out


def test_the_scenarios_report_what_they_are_about(findings):
    statuses = {f.status for _, f in findings}
    assert Status.ERROR not in statuses, [(n, f.title, f.detail) for n, f in findings if f.status is Status.ERROR]
    assert {Status.FAIL, Status.WARN, Status.SKIP} <= statuses


def _reached(findings) -> set[tuple[str, str]]:
    """Every (code, variant) the scenarios' findings are worded with, the causes inside them too."""
    reached = set()

    def add(code, variant, params):
        reached.add((code, variant))
        for value in params.values():
            if messages.catalog.is_ref(value):
                add(value["code"], value["variant"], value["params"])

    for _, f in findings:
        add(f.code, f.variant, f.params)
    return reached


# Texts no input reaches, kept so that the variant a site computes always has one.
UNREACHABLE = {
    ("*.probe-error", ""): "an ERROR finding (a probe that raised): tests/test_messages.py words it",
    ("remote_code.off-path", "one"): "an unguarded off-path hazard always has a root",
    ("remote_code.off-path", "more"): "an unguarded off-path hazard always has a root",
    ("remote_code.off-path", "one-roots-guard"): "a root and a guard take two hazards",
    ("train_run.build", "lora"): "the step probe reports a LoRA stage failure as step.lora-wrap",
}


def test_every_text_of_the_catalog_is_worded_by_a_real_finding(findings):
    """A text whose placeholders its probe does not fill (a typo, a renamed param) fails here or below."""
    reached = {(code if messages.has(code, variant) and (code, variant) in messages.all_texts()
                else "*." + code.partition(".")[2], variant) for code, variant in _reached(findings)}
    unreached = sorted(key for key in messages.all_texts() if key not in reached and key not in UNREACHABLE)
    assert not unreached, "texts no scenario words:\n" + "\n".join(map(str, unreached))


def test_every_finding_is_worded_in_both_languages(findings):
    for name, f in findings:
        english, russian = f.text("en"), f.text("ru")  # a param its probe does not give fails here
        for key in ("title", "detail", "fix"):
            assert bool(getattr(english, key)) == bool(getattr(russian, key)), (name, f.code, f.variant, key)
        assert any("а" <= ch.lower() <= "я" for ch in russian.title), (name, f.code, f.variant, russian.title)
        assert "None" not in russian.title, (f.code, f.variant, russian.title)  # a missing value is a variant


# ---------------------------------------------------------------- remote code: hazards weighed by reach


@scenario
def remote_code_off_path(env):
    """eval only in a function nothing calls (once, twice); the v1 stand-in (seven evals, a guarded torch.load); a
    torch.load loading reaches only under a guard no caller sets (once, twice)."""
    infer_only = MODELING + "\n\ndef unused(s):\n    return eval(s)\n"
    yield from remote(toy(env.tmp() / "m", infer_only))
    yield from remote(env.v1_model, trust_remote_code=True, allow_unpinned=True)
    builder = "import torch\n\ndef build(checkpoint=None):\n    if checkpoint is not None:\n        torch.load(checkpoint)\n"
    guarded_only = MODELING.replace("    def forward", "    def __init__(self, config):\n        build()\n\n    def forward")
    yield from remote(toy(env.tmp() / "m", guarded_only + builder))
    yield from remote(toy(env.tmp() / "m", MODELING + "\n\ndef unused(s):\n    eval(s)\n    return eval(s)\n"))
    twice = builder.replace("torch.load(checkpoint)", "torch.load(checkpoint)\n        torch.load(checkpoint + '.bak')")
    yield from remote(toy(env.tmp() / "m", guarded_only + twice))


# ---------------------------------------------------------------- pinned means verifiable


def git_commit_all(folder: Path) -> str:
    """Make ``folder`` a git checkout with everything committed; its HEAD commit."""
    import os
    import subprocess

    who = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "model"]):
        subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True, env={**os.environ, **who})
    return subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()


@scenario
def remote_code_pins(env):
    """Every reason a revision does not pin: none, a branch, a commit on a plain folder, another digest, a git
    checkout at another commit or with changed files; and every way it does: a git commit, the content digest, a
    hub snapshot's commit, the built-in demo."""
    folder = toy(env.tmp() / "m")
    for revision in (None, "main", COMMIT, "sha256:" + "0" * 64):
        yield from remote(folder, trust_remote_code=True, revision=revision)
    repo = toy(env.tmp() / "g")
    head = git_commit_all(repo)
    yield from remote(repo, trust_remote_code=True, revision="c" * 40)
    yield from remote(repo, trust_remote_code=True, revision=head)  # pinned by its commit
    (repo / "modeling_toy.py").write_text((repo / "modeling_toy.py").read_text() + "\n# edited\n")
    yield from remote(repo, trust_remote_code=True, revision=head)
    from dsocr_probe.inputs import pinning

    yield from remote(folder, trust_remote_code=True, revision=pinning.content_digest(folder))  # pinned by content
    snapshot = toy(env.tmp() / "snapshots" / COMMIT)  # a hub-cache snapshot, named by its commit
    yield from remote(snapshot, trust_remote_code=True, revision=COMMIT)
    yield from remote(snapshot, trust_remote_code=True, allow_unpinned=True)  # no revision: allowed, commit known
    from dsocr_probe.demo import target as demo

    env.mp.setattr(demo, "demo_family", lambda: demo.V1)  # the demo of a stack without OCR-2: our remote code
    yield from probe("remote_code", context(installed())).findings


# ---------------------------------------------------------------- target folders


@scenario
def target_folders(env):
    """A Windows path on Linux, a mistyped relative folder, and a file where a folder should be."""
    from dsocr_probe.inputs import target as target_mod

    yield refused(target_mod.resolve, "C:\\models\\DeepSeek-OCR")
    here = env.tmp()
    (here / "models").mkdir()
    env.mp.chdir(here)
    yield refused(target_mod.resolve, "models/NoSuchModel")
    a_file = here / "config.json"
    a_file.write_text("{}")
    yield refused(target_mod.resolve, str(a_file))

# ---------------------------------------------------------------- LoRA against the installed peft


@scenario
def train_config_lora_installed_peft(env):
    """A field this peft lacks (known and unknown to us) and a target whose module type peft cannot adapt."""
    from dsocr_probe.model import lora
    from dsocr_probe.probes import train_config_lora as tcl
    from dsocr_probe.inputs.trainconfig import TrainConfig

    fields = lora.config_fields()
    env.mp.setattr(lora, "config_fields", lambda: fields - {"exclude_modules"})
    path = env.tmp() / "c.yaml"
    yield from tcl._lora_fields({"r": 4, "exclude_modules": "x", "dsocr_no_such_field": 1})
    env.mp.undo()

    class Router(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(2, 4))

    with torch.device("meta"):
        model = torch.nn.ModuleDict({"gate": Router(), "q_proj": torch.nn.Linear(4, 4)})
    ctx = context(installed(), model=str(env.v1_model))
    ctx.__dict__["_cache_skeleton"] = (SimpleNamespace(module_names=["", "gate", "q_proj"], model=model), None)
    yield from tcl.lora(ctx, TrainConfig(path, lora={"target_modules": ["gate", "q_proj"], "task_type": "CAUSAL_LM"}))


@scenario
def train_config_quantization(env):
    """4/8-bit loading without bitsandbytes, and with the vision side left to be quantized."""
    from dsocr_probe.probes.train_config import quantized_loading

    names = ["model.layers.0.self_attn.q_proj", "model.sam_model.blocks.0.attn.qkv", "model.projector.layers"]
    for versions in ({}, {"bitsandbytes": "0.45.0"}):
        ctx = context(installed(**versions))
        ctx.__dict__["_cache_skeleton"] = (SimpleNamespace(linear_names=names), None)
        yield from quantized_loading(ctx, {"quantization_config": {"load_in_4bit": True}})
    ctx = context(installed())
    ctx.__dict__["_cache_skeleton"] = (SimpleNamespace(linear_names=names[:2]), None)
    yield from quantized_loading(ctx, {"load_in_8bit": True, "llm_int8_skip_modules": ["lm_head"]})


# ---------------------------------------------------------------- environment: compiled extensions and quantization


@scenario
def environment_extension_imports(env):
    from dsocr_probe.probes import environment

    for versions, errors in (
        ({"torch": "2.13.0+cpu", "torchvision": "0.28.0+cu130"},
         {"torchvision": "RuntimeError: operator torchvision::nms does not exist"}),
        ({"torch": "2.13.0+cpu", "torchvision": "0.28.0+cpu", "flash-attn": "2.7.3"},
         {"torchvision": "ImportError: libcudart.so.13: cannot open shared object file",
          "flash-attn": "ImportError: flash_attn_2_cuda.so: undefined symbol: _ZN3c10"}),
        ({"torch": "2.13.0", "flash-attn": "2.7.3"}, {"flash-attn": "ModuleNotFoundError: No module named 'einops'"}),
        # A torch whose version does not parse (a local build): no torchvision release can be named.
        ({"torch": "custom-build", "torchvision": "0.28.0+cu130"},
         {"torchvision": "RuntimeError: operator torchvision::nms does not exist"}),
        ({"torch": "custom-build", "torchvision": "0.28.0"}, {"torchvision": "ImportError: libc10.so: cannot open"}),
    ):
        facts = linux_cpu(**versions)
        facts.import_errors = errors
        yield from environment.run(SimpleNamespace(facts=facts))


@scenario
def step_targets_fix_with_exclude_modules(env):
    """The step probe's fixes as a peft with `exclude_modules` (>= 0.14.0) words them, on any stack:
    on peft 0.13.x the same calls give the single-regex form instead."""
    from dsocr_probe.model import gradients, lora
    from dsocr_probe.probes import step_learning

    fields = lora.config_fields()
    env.mp.setattr(lora, "config_fields", lambda: fields | {"exclude_modules"})
    yield step_learning.wrap_failed(ValueError("Target modules {'q_proj'} not found in the base model."),
                                    [n for n, _ in _Towers(True).named_modules()]).finding
    lm, vision = "model.layers.0.self_attn.q_proj", "model.vision_model.layers.0.q_proj"
    for report, no_grad in (
        (gradients.GradientReport([gradients.AdapterGrad(vision, None)]), set()),
        (gradients.GradientReport([gradients.AdapterGrad(lm, None)]), set()),
        (gradients.GradientReport([gradients.AdapterGrad(lm, 0.5), gradients.AdapterGrad(vision, None)]), {vision}),
    ):
        yield from step_learning.gradient_findings(report, no_grad, [lm, vision], False)


# ---------------------------------------------------------------- distributed


def _rank(rank: int, plan: list, rows: int, **extra) -> dict:
    lm = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight"
    return {"rank": rank, "pid": 1, "finished": True, "rows": rows, "world": 2, "backend": "gloo", "plan": plan,
            "sampler": "BatchSamplerShard", "adapters": [lm], "reached": [lm], "grads": {lm: [0.5, 1.0]},
            "weights": {lm: [2.0, 3.0]}, "times": [0.2, 0.1, 0.1], "losses": [1.5, 1.4, 1.3],
            "wrapper": "DistributedDataParallel", "find_unused": True, **extra}


def _outcome(ranks: dict, **kw):
    from dsocr_probe.model.distributed_launch import Outcome

    return Outcome(nproc=kw.pop("nproc", 2), ranks=ranks, returncode=kw.pop("returncode", 0), limit_s=30.0, **kw)


@scenario
def distributed_runs(env):
    """What the distributed probe makes of the ranks' reports: the launches are described by hand here (the real
    2-process runs are in test_distributed.py)."""
    from dsocr_probe.probes.distributed import outcome_findings

    def findings(outcome, training=None, **kw):
        return list(outcome_findings(outcome, "gloo", "--dsocr-nproc", training or {"per_device_train_batch_size": 2},
                                     **kw))

    expert = "base_model.model.model.layers.1.mlp.experts.5.up_proj.lora_A.default.weight"
    vision = "base_model.model.model.sam_model.blocks.0.attn.qkv.lora_A.default.weight"
    yield from findings(_outcome({0: _rank(0, [[0, 3], [1, 5]], 6), 1: _rank(1, [[2, 4], [0, 3]], 6)}))
    yield from findings(_outcome({0: _rank(0, [[0, 1]], 4, find_unused=False), 1: _rank(1, [[2, 3]], 4)}),
                        fsdp=True)
    yield from findings(_outcome({0: _rank(0, [[0, 1], [4]], 5), 1: _rank(1, [[2, 3]], 5)}))
    yield from findings(_outcome({0: _rank(0, [[0, 1], [4, 0]], 5), 1: _rank(1, [[2, 3]], 5)}))
    short = {"per_device_train_batch_size": 4}
    yield from findings(_outcome({0: _rank(0, [[0, 1]], 3), 1: _rank(1, [[2, 0]], 3)}), short)
    yield from findings(_outcome({0: _rank(0, [[0, 1, 2]], 3), 1: _rank(1, [], 3)}), short)
    sharded = _rank(0, [[0, 1]], 4, wrapper="FullyShardedDataParallel")
    yield from findings(_outcome({0: sharded, 1: _rank(1, [[2, 3]], 4, wrapper="FullyShardedDataParallel")}))
    unused = _rank(1, [[2, 3]], 4)
    unused["adapters"] = unused["adapters"] + [expert]
    yield from findings(_outcome({0: _rank(0, [[0, 1]], 4), 1: unused}))
    unused = _rank(1, [[2, 3]], 4)
    unused["adapters"] = unused["adapters"] + [vision]
    yield from findings(_outcome({0: _rank(0, [[0, 1]], 4), 1: unused}))
    lm = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight"
    yield from findings(_outcome({0: _rank(0, [[0, 1]], 4), 1: _rank(1, [[2, 3]], 4, grads={lm: [0.7, 1.0]})}))
    yield from findings(_outcome({0: _rank(0, [[0, 1]], 4), 1: _rank(1, [[2, 3]], 4, weights={lm: None})}))
    # failures
    ddp = ("Expected to have finished reduction in the prior iteration before starting a new one. This error ...\n"
           "Parameters which did not receive grad for rank 1: " + expert)
    stopped = {0: _rank(0, [[0, 1]], 4, finished=False, error="RuntimeError: " + ddp),
               1: {**unused, "adapters": unused["adapters"] + [expert], "finished": False}}
    yield from findings(_outcome(stopped, returncode=1, failed_rank=0, failed_exitcode=1))
    yield from findings(_outcome({0: _rank(0, [[0, 1]], 4, finished=False, error="RuntimeError: no FSDP on gloo")},
                                 returncode=1), fsdp=True)
    hung = {0: _rank(0, [[0, 1]], 4, finished=False), 1: _rank(1, [[2, 3]], 4, finished=False)}
    yield from findings(_outcome(hung, returncode=None, timed_out=True,
                                 where={0: "torch/distributed/c10d.py:1 in wait", 1: "dsocr_probe/w.py:7 in _inject"}))
    yield from findings(_outcome({0: _rank(0, [[0, 1]], 4), 1: hung[1]}, returncode=None, timed_out=True,
                                 where={1: "dsocr_probe/w.py:7 in _inject"}))
    three = {**hung, 2: _rank(2, [[4]], 4, finished=False)}
    yield from findings(_outcome(three, nproc=3, returncode=None, timed_out=True,
                                 where={0: "torch/x.py:1 in wait", 1: "a.py:1 in f", 2: "b.py:2 in g"}))
    yield from findings(_outcome(hung, returncode=None, timed_out=True))
    yield from findings(_outcome({}, returncode=1))
    yield from findings(_outcome({0: hung[0], 1: {**hung[1], "error": "RuntimeError: boom"}}, returncode=1,
                                 failed_rank=1, failed_exitcode=1))
    yield from findings(_outcome(hung, returncode=1, failed_rank=1, failed_exitcode=-9))
    yield from findings(_outcome(hung, returncode=1, failed_rank=1))
    yield from findings(_outcome(hung, returncode=1))  # no rank named, none wrote an error
    yield from findings(_outcome({0: _rank(0, [[0, 1]], 4), 1: _rank(1, [[2, 3]], 4)}, survivors=[4242]))
    yield from distributed_not_built(hung[0])


def distributed_not_built(rank: dict) -> Iterable[Finding]:
    """What a rank that could not build the run reports (as the worker writes it, through JSON), worded by the probe."""
    from dsocr_probe.model.trainrun import BuildError
    from dsocr_probe.probes.context import finding_of
    from dsocr_probe.probes.distributed import _stop_if_not_built
    from dsocr_probe.run.distributed_worker import build_failure

    def not_built(stop: dict) -> Finding:
        with pytest.raises(ProbeStop) as caught:
            _stop_if_not_built(_outcome({0: {**rank, "stop": json.loads(json.dumps(stop))}}, returncode=1))
        return caught.value.finding

    def failed(stage: str, what: str) -> BuildError:
        exc = BuildError(stage, what)
        exc.__cause__ = ValueError("r must be a positive integer")
        return exc

    def config(data: dict):
        return SimpleNamespace(train_config=None, unless_broken=lambda loader: SimpleNamespace(data=data))

    yield not_built(build_failure(failed("lora", "get_peft_model"), config({})))
    yield not_built(build_failure(failed("collator", "the collator"), config({"collator": "team.collate:Collator"})))
    yield not_built(build_failure(failed("collator", "the collator"), config({})))
    yield not_built(finding_of(InputError("loading.no-weights", path="/models/ocr")).ref())


@scenario
def distributed_inputs(env):
    """The distributed probe before any launch: off, its prerequisite, the GPUs, the engines' settings."""
    from dsocr_probe.model import distributed_launch, loading
    from dsocr_probe.inputs import engines
    from dsocr_probe.probes.engine_findings import engine_findings

    yield from probe("distributed", context(installed(), model="/nonexistent/dsocr-probe-model")).findings
    model = str(env.v1_model)
    yield from probe("distributed", context(installed(), model=model)).findings
    yield from probe("distributed", context(installed(), model=model, nproc=1)).findings
    bad = _config(env.tmp(), training={"deepspeed": "/nonexistent/ds.json"})
    yield from probe("distributed", context(installed(), model=model, nproc=2, train_config=bad)).findings
    data = env.tmp()
    write_pages(data / "train", ["x"])
    env.mp.setattr(loading, "default_device", lambda ctx: "cuda")
    env.mp.setattr(torch.cuda, "device_count", lambda: 0)
    yield from probe("distributed", context(installed(), model=model, nproc=2, data=data)).findings
    env.mp.setattr(loading, "default_device", lambda ctx: "cpu")
    if not engines.installed("deepspeed"):
        env.mp.setattr(distributed_launch, "launch", lambda *a, **k: _outcome({}, returncode=1))
        ds = _config(env.tmp(), training={"deepspeed": {"zero_optimization": {"stage": 2}}})
        yield from probe("distributed", context(installed(), model=model, nproc=2, train_config=ds, data=data)).findings
    for training, vision in (
        ({"fsdp": "full_shard bogus", "fsdp_config": {"min_num_param": 1, "zzz": 2}}, False),
        ({"fsdp": "full_shard", "fsdp_config": {"min_num_params": 1}}, False),
        ({"deepspeed": {"zero_optimisation": {}, "qqq": 1, "bf16": {"enabled": True},
                        "zero_optimization": {"stage": 3}}}, True),
        ({"deepspeed": {"zero_optimization": {"stage": 3, "stage3_gather_16bit_weights_on_model_save": True}}}, False),
        ({"deepspeed": {"zero_optimization": {"stage": 3}}}, False),
        ({"deepspeed": {"zero_optimization": {"stage": 3, "gather_16bit_weights_on_model_save": True}}}, True),
        ({"deepspeed": {"zero_optimization": {"stage": 2}}}, False),
        ({"deepspeed": {"train_batch_size": "auto"}}, False),
        ({"fsdp": "full_shard", "deepspeed": {"train_batch_size": "auto"}}, False),
        ({"deepspeed": 3}, False),
    ):
        yield from engine_findings(engines.read(training, vision_tower=vision), training)
    folder = env.tmp()
    for name, ds in (("a.json", {"zero_optimization": {"stage": 2}}), ("b.json", {"train_batch_size": "auto"})):
        (folder / name).write_text(json.dumps(ds))
        training = {"deepspeed": str(folder / name)}
        yield from engine_findings(engines.read(training), training)


@scenario
def kin_families(env):
    """The family registry's findings: processor/model settings that disagree, a processor that needs
    torchvision, slots not compared, labels on the prompt, and the causality check's three outcomes."""
    import torch as _torch

    from dsocr_probe.model import causality
    from dsocr_probe.collators.base import labels_on_prompt
    from dsocr_probe.probes import batch, processor, step_learning
    from dsocr_probe.probes.context import finding_of

    target = SimpleNamespace(model_type="qwen2_vl", read_json=lambda name: {})
    config = {"vision_config": {"spatial_merge_size": 2, "patch_size": 14, "temporal_patch_size": 2}}
    proc = SimpleNamespace(image_processor=SimpleNamespace(merge_size=1, patch_size=14, temporal_patch_size=2))
    yield from processor._agreements(target, config, proc)
    yield finding_of(loading._missing_package(InputError(
        "loading.processor", path="/m", auto_class="AutoProcessor",
        error="ImportError: Qwen2VLVideoProcessor requires the Torchvision library")))
    checks = [messages.M("label checks (a supervised token per sample, none on padding)")]
    why = messages.M("%(model)s has no get_image_features", model="Florence2ForConditionalGeneration")
    yield batch.layout_finding(None, messages.M("not compared (%(why)s); the slot count was not checked", why=why), checks)
    ids = _torch.tensor([[1, 9, 7, 7, 4, 5, 2]])  # "User:" before the image is supervised
    for problem in labels_on_prompt({"input_ids": ids, "labels": ids.clone()}, 7):
        yield layout_finding(problem)

    run = SimpleNamespace(model=SimpleNamespace(config=SimpleNamespace(model_type="paligemma")),
                          collator=lambda examples: {}, collator_source="dsocr_probe's verified batch builder")
    chosen = [SimpleNamespace(row=SimpleNamespace(example=lambda: {}))]
    for leaks, model_type in ((True, "paligemma"), (True, "llava"), (False, "llava")):
        run.model.config.model_type = model_type
        env.mp.setattr(causality, "check", lambda model, b, encoder_decoder=False, leaks=leaks: causality.Causality(
            leaks, 3 if leaks else None, 9, 6, 0.25 if leaks else 0.0, 4.0))
        yield from step_learning.causality_findings(run, chosen, "cpu", contextlib.nullcontext)
    env.mp.setattr(causality, "check", lambda *a, **k: (_ for _ in ()).throw(
        causality.NotChecked("the batch has no labels tensor")))
    yield from step_learning.causality_findings(run, chosen, "cpu", contextlib.nullcontext)


@scenario
def processor_needs_torchvision(env):
    """The environment probe names the package a family's processor needs (Qwen-VL on transformers 5.x)."""
    from dsocr_probe.probes import environment

    target = SimpleNamespace(config={"model_type": "qwen2_vl"})
    ctx = SimpleNamespace(facts=linux_cpu(transformers="5.24.0", torch="2.13.0"), options=Options(model="m"),
                          target=lambda: target)
    yield from (f for f in environment.run(ctx) if f.code == "environment.processor-needs")
# ---------------------------------------------------------------- memory: the weightless forecast


@scenario
def memory_forecast(env):
    """The memory probe on the demo's folder without weights: no card, fits, tight and does not fit (the
    changes it would list replaced, so both fixes are reached), the card table both ways, what stops it;
    the step probe on that folder."""
    from dsocr_probe.model import memory_forecast as mf
    from dsocr_probe.demo.target import demo_target
    from dsocr_probe.model.memory_forecast import GIB
    from dsocr_probe.probes import memory

    demo = demo_target()
    folder = env.tmp() / "weightless"
    shutil.copytree(demo.path, folder, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "dataset"))
    config = env.tmp() / "training.yaml"
    config.write_text(yaml.safe_dump(__import__("dsocr_probe.demo.target", fromlist=["x"]).demo_train_config(demo.path, None)),
                      encoding="utf-8")

    def run(gib=None, **options):
        ctx = context(model=str(folder), train_config=config, trust_remote_code=True, allow_unpinned=True,
                      gpu_memory=int(gib * GIB) if gib else None, **options)
        return probe("memory", ctx).findings

    found = run()
    need = found[0].params["need_bytes"] / GIB
    yield from found
    yield from run(80)
    env.mp.setattr(memory, "_changes", lambda *a, **k: [{"change": "`gradient_checkpointing: true`", "need": 1}])
    yield from run(need * 1.05)  # tight, with a change that fits
    yield from run(need / 2)  # does not fit, with a change that fits
    env.mp.setattr(memory, "_changes", lambda *a, **k: [])
    yield from run(need / 2)  # does not fit, and nothing fits
    yield from run(need * 1.05)
    huge = mf.StepForecast(1, 100, 0, 90 * GIB, 0, 0, 0, 0, 0, 0, 90 * GIB, "forward/backward")
    yield memory._cards_finding(huge, huge, huge, 1, judged=True)
    yield from probe("memory", context(model=str(env.tmp() / "missing"))).findings  # the prerequisite
    ctx = context(model=str(folder), trust_remote_code=True, allow_unpinned=True)
    ctx.__dict__["_cache_skeleton"] = (SimpleNamespace(model=None, build_error="TypeError: no meta"), None)
    yield from probe("memory", ctx).findings
    with env.mp.context() as mp:
        mp.setattr(mf, "forecast", lambda *a, **k: (_ for _ in ()).throw(mf.ForecastError("the weightless step failed")))
        yield from run()
    with env.mp.context() as mp:
        mp.setattr(memory, "_tokenizer", lambda ctx: None)
        mp.setattr(memory, "_has_dataset", lambda ctx: False)
        yield from run()

    class Refusing:
        def __call__(self, examples):
            raise ValueError("example 0: too long")

    with env.mp.context() as mp:
        mp.setattr(loading, "builder_for", lambda *a, **k: Refusing())
        yield from run()
    yield from probe("step", context(model=str(folder), train_config=config, trust_remote_code=True,
                                     allow_unpinned=True)).findings
