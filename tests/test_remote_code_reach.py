"""Hazards weighed by reach: what loading or a training step runs blocks, what only inference runs warns."""

from __future__ import annotations

import importlib.metadata
import textwrap

import pytest
import transformers
from probing import context, linux_cpu, probe
from toy_remote import write_toy

from dsocr_probe import codescan
from dsocr_probe.codescan import callgraph
from dsocr_probe.knowledge import hazards as hz
from dsocr_probe.findings import Status

INSTALLED = {"transformers": transformers.__version__, "torch": importlib.metadata.version("torch")}

# A model like the published one: built in __init__, trained through forward, read with infer().
MODEL = """
import torch
from torch import nn
from transformers import PreTrainedModel

from .configuration_toy import ToyConfig


def parse_boxes(text):
    {in_helper}
    return text


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        {in_block_init}

    def forward(self, x):
        {in_block_forward}
        return x


class ToyModel(PreTrainedModel):
    config_class = ToyConfig
    {in_class_body}

    def __init__(self, config):
        super().__init__(config)
        self.block = Block()
        {in_init}

    def forward(self, input_ids):
        {in_forward}
        return self.block(input_ids)

    def infer(self, tokenizer, prompt=""):
        {in_infer}
        return parse_boxes(prompt.strip())
"""
SLOTS = ("in_helper", "in_block_init", "in_block_forward", "in_class_body", "in_init", "in_forward", "in_infer")


def model(**planted: str) -> str:
    return MODEL.format(**{slot: planted.get(slot, "pass") for slot in SLOTS})


def run(folder, **options):
    result = probe("remote_code", context(linux_cpu(**INSTALLED), model=str(folder), **options))
    assert not [f for f in result.findings if f.status is Status.ERROR]
    return {f.code: f for f in result.findings}


def toy(tmp_path, modeling: str, **kwargs):
    return write_toy(tmp_path / "model", modeling, **kwargs)


# ---------------------------------------------------------------- the same eval, in different places


@pytest.mark.parametrize("slot, runs", [
    ("in_forward", "in the training step: ToyModel.forward → eval"),
    ("in_init", "in from_pretrained: ToyModel.__init__ → eval"),
    ("in_block_forward", "in the training step: Block.forward → eval"),  # a module built in __init__
    ("in_block_init", "in from_pretrained: ToyModel.__init__ → Block.__init__ → eval"),
    ("in_class_body", "on import"),
])
def test_eval_that_loading_or_training_reaches_is_no_go(tmp_path, slot, runs):
    found = run(toy(tmp_path, model(**{slot: "eval('1')"})))
    f = found["remote_code.eval"]
    assert f.status is Status.FAIL
    assert f.to_json()["table"][0]["runs"] == runs
    assert "remote_code.off-path" not in found


def test_eval_only_in_infer_is_a_warning_naming_the_path(tmp_path):
    found = run(toy(tmp_path, model(in_infer="boxes = eval(prompt)", in_helper="eval(text)")))
    assert "remote_code.eval" not in found
    f = found["remote_code.off-path"]
    assert f.status is Status.WARN
    assert f.title == "Risky calls outside loading and training: `eval` in ToyModel.infer → parse_boxes → eval (+1 more)"
    assert [row["runs"] for row in f.to_json()["table"]] == [
        "only when called (not by training): ToyModel.infer → parse_boxes → eval",
        "only when called (not by training): ToyModel.infer → eval",
    ]
    assert "ToyModel.infer is called" in f.detail and f.params["roots"] == "ToyModel.infer"


def test_the_same_helper_called_from_forward_is_no_go(tmp_path):
    modeling = model(in_helper="eval(text)", in_forward="parse_boxes('x')")
    f = run(toy(tmp_path, modeling))["remote_code.eval"]
    assert f.status is Status.FAIL and f.to_json()["table"][0]["runs"] == "in the training step: ToyModel.forward → parse_boxes → eval"


def test_a_helper_nothing_calls_warns(tmp_path):
    modeling = model() + "\n\ndef unused(s):\n    return eval(s)\n"
    f = run(toy(tmp_path, modeling))["remote_code.off-path"]
    assert f.status is Status.WARN and f.to_json()["table"][0]["runs"] == "never (nothing calls it): unused → eval"


def test_obfuscation_blocks_wherever_it_sits(tmp_path):
    modeling = model(in_infer="import base64; exec(base64.b64decode('cHJpbnQoJ2hpJyk='))")
    found = run(toy(tmp_path, modeling))
    assert found["remote_code.obfuscated"].status is Status.FAIL
    assert found["remote_code.off-path"].params["kinds"] == ["eval"]  # the exec itself is off the path


# ---------------------------------------------------------------- across files and through unknown objects


def test_reach_follows_imports_between_the_checkpoint_files(tmp_path):
    blocks = "import subprocess\n\ndef encode(x):\n    return run_tool(x)\n\ndef run_tool(x):\n    subprocess.run(['id'])\n"
    modeling = "from .blocks import encode\n" + model(in_forward="encode(input_ids)")
    f = run(toy(tmp_path, modeling, extra={"blocks.py": blocks}))["remote_code.process"]
    assert f.status is Status.FAIL
    assert f.to_json()["table"][0]["runs"] == "in the training step: ToyModel.forward → encode → run_tool → subprocess.run"


def test_a_call_through_an_unknown_object_reaches_the_dangerous_function_of_that_name(tmp_path):
    helper = "\n\nclass Parser:\n    def parse(self, s):\n        return eval(s)\n"
    f = run(toy(tmp_path, model(in_forward="self.parser.parse('1')") + helper))["remote_code.eval"]
    assert f.status is Status.FAIL and f.to_json()["table"][0]["runs"] == "in the training step: ToyModel.forward → Parser.parse → eval"
    computed = run(toy(tmp_path / "b", model(in_forward="getattr(self, 'in' + 'fer')(None)", in_infer="eval(prompt)")))
    assert computed["remote_code.eval"].status is Status.FAIL  # a computed name may be any function


# ---------------------------------------------------------------- a load guarded by a parameter


BUILDER = """
import torch


def build_encoder(checkpoint=None):
    return _build(8, checkpoint=checkpoint)


def _build(width, checkpoint=None):
    if checkpoint is not None:
        torch.load(checkpoint)
    return width
"""


def test_a_guarded_load_the_loading_path_never_enables_is_a_warning_with_the_reason(tmp_path):
    modeling = "from .encoder import build_encoder\n" + model(in_init="self.encoder = build_encoder()")
    # torch 2.5.1 unpickles by default: on the loading path this load would be a NO-GO.
    result = probe("remote_code", context(linux_cpu(transformers=INSTALLED["transformers"], torch="2.5.1"),
                                          model=str(toy(tmp_path, modeling, extra={"encoder.py": BUILDER}))))
    found = {f.code: f for f in result.findings}
    assert "remote_code.torch-load" not in found
    f = found["remote_code.off-path"]
    assert f.status is Status.WARN and f.params["guard"] == "if checkpoint is not None:"
    assert f.params["guard_path"] == "ToyModel.__init__ → build_encoder → _build"
    assert "no call on that path sets it" in f.detail


def test_the_same_load_with_a_checkpoint_passed_while_loading_is_no_go(tmp_path):
    modeling = "from .encoder import build_encoder\n" + model(in_init="self.encoder = build_encoder(config.sam_path)")
    result = probe("remote_code", context(linux_cpu(transformers=INSTALLED["transformers"], torch="2.5.1"),
                                          model=str(toy(tmp_path, modeling, extra={"encoder.py": BUILDER}))))
    f = next(f for f in result.findings if f.code == "remote_code.torch-load")
    assert f.status is Status.FAIL and f.to_json()["table"][0]["runs"].startswith("in from_pretrained: ToyModel.__init__ → build_encoder")


def test_a_passed_along_none_default_is_followed_up_its_callers(tmp_path):
    graph_source = textwrap.dedent(BUILDER) + textwrap.dedent("""
        class M:
            def __init__(self, config, checkpoint=None):
                self.enc = build_encoder(checkpoint)
        """)
    folder = tmp_path / "g"
    folder.mkdir()
    (folder / "m.py").write_text(graph_source)
    graph = callgraph.CallGraph(folder, ["m.py"], [("AutoModel", "m.py", "M")])
    line = graph_source.splitlines().index("        torch.load(checkpoint)") + 1
    # M.__init__ is called by from_pretrained, which may pass checkpoint=...: reached.
    assert graph.reach("m.py", line, True).on_training_path


# ---------------------------------------------------------------- the v1 stand-in, like the published code


def test_v1_standin_evals_only_in_infer_and_loads_sam_only_when_given_a_path(tmp_path):
    from dsocr_probe.demo.standin import write_v1_standin

    folder = write_v1_standin(tmp_path / "DeepSeek-OCR", cuda_calls=True)
    hazards = list(codescan.collect(folder).hazards())
    evals = [h for h in hazards if h.kind == hz.EVAL]
    assert len(evals) == 7 and not any(h.on_training_path for h in evals)
    paths = {h.reach.describe(h.call) for h in evals}
    assert paths == {"DeepseekOCRForCausalLM.infer → eval",
                     "DeepseekOCRForCausalLM.infer → draw_bounding_boxes → extract_coordinates_and_label → eval"}
    (load,) = [h for h in hazards if h.kind == hz.TORCH_LOAD]
    assert load.reach.phase == callgraph.LOAD and load.reach.guard == "if checkpoint is not None:"
    (cuda,) = [h for h in hazards if h.kind == hz.CUDA]
    assert cuda.on_training_path and cuda.reach.path == ("DeepseekOCRModel.forward",)

    found = run(folder, trust_remote_code=True, allow_unpinned=True)
    assert found["remote_code.off-path"].status is Status.WARN and found["remote_code.off-path"].params["count"] == 8
    assert found["remote_code.cuda"].to_json()["table"][0]["runs"] == "in the training step: DeepseekOCRModel.forward → .cuda()"
    assert not {"remote_code.eval", "remote_code.torch-load"} & set(found)


def test_functions_defined_under_a_module_level_try_are_placed_too(tmp_path):
    fallback = textwrap.dedent("""
        try:
            from flash_attn import flash_attn_func
        except ImportError:
            def flash_attn_func(q):
                return eval(q)
        """)
    infer_only = run(toy(tmp_path, fallback + model(in_infer="flash_attn_func(prompt)")))
    assert "remote_code.eval" not in infer_only
    assert infer_only["remote_code.off-path"].to_json()["table"][0]["runs"].endswith("ToyModel.infer → flash_attn_func → eval")
    in_forward = run(toy(tmp_path / "b", fallback + model(in_forward="flash_attn_func('1')")))
    assert in_forward["remote_code.eval"].status is Status.FAIL


def test_an_override_of_a_framework_method_counts_as_run_by_training(tmp_path):
    # nn.Module.named_parameters is what an optimizer and PEFT call; `chat` is no framework name.
    methods = ("\n    def named_parameters(self, *args, **kwargs):\n        eval('1')\n        return super().named_parameters()\n"
               "\n    def chat(self, text):\n        return eval(text)\n")
    found = run(toy(tmp_path, model() + methods))
    assert found["remote_code.eval"].status is Status.FAIL
    assert found["remote_code.eval"].to_json()["table"][0]["runs"] == "in the training step: ToyModel.named_parameters → eval"
    assert found["remote_code.off-path"].to_json()["table"][0]["runs"] == "only when called (not by training): ToyModel.chat → eval"
