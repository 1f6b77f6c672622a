"""The remote-code probe on planted stand-ins: each risky pattern, the import checks and the trust policy."""

from __future__ import annotations

import importlib.metadata
import json
import sys
import textwrap
from pathlib import Path

import pytest
import transformers
import transformers.modeling_utils  # noqa: F401
import transformers.models.llama.modeling_llama  # noqa: F401
from packaging.version import Version
from probing import context, linux_cpu, probe
from toy_remote import CLEAN_MODELING, CONFIGURATION, write_toy

from dsocr_probe.findings import Finding, ProbeResult, Status

# (The two imports above load torch.distributed once at collection: pytester's in-process runs restore
# sys.modules afterwards, and a second import of those torch modules fails to register its operators.)
INSTALLED = {"transformers": transformers.__version__, "torch": importlib.metadata.version("torch")}
LEGACY = Version(transformers.__version__) <= Version("4.47.1")  # still ships LlamaFlashAttention2
COMMIT = "0123456789abcdef0123456789abcdef01234567"

LLAMA_FA2 = "from transformers.models.llama.modeling_llama import LlamaFlashAttention2\n"


def standin(folder: Path, modeling: str = CLEAN_MODELING, **kwargs) -> Path:
    return write_toy(folder, modeling, **kwargs)


def run(folder: Path, facts=None, **options) -> ProbeResult:
    ctx = context(facts or linux_cpu(**INSTALLED), model=str(folder), **options)
    result = probe("remote_code", ctx)
    errors = [f for f in result.findings if f.status is Status.ERROR]
    assert not errors, errors[0].title + "\n" + errors[0].detail
    return result


def one(result: ProbeResult, code: str) -> Finding:
    found = [f for f in result.findings if f.code == code]
    assert len(found) == 1, (code, [(f.code, f.status.value, f.title) for f in result.findings])
    return found[0]


def codes(result: ProbeResult) -> dict[str, Status]:
    return {f.code: f.status for f in result.findings}


def called_from_forward(body: str) -> str:
    """A model class, after `body`, whose forward calls every function `body` defines (so training reaches them)."""
    import ast

    calls = [f"        {node.name}({', '.join(['input_ids'] * len(node.args.args))})\n"
             for node in ast.parse(textwrap.dedent(body)).body if isinstance(node, ast.FunctionDef)]
    return ("\n\nclass ToyModelReached(ToyModel):\n    def forward(self, input_ids):\n"
            + "".join(calls) + "        return input_ids\n")


REACHED = {"AutoConfig": "configuration_toy.ToyConfig", "AutoModel": "modeling_toy.ToyModelReached"}


def planted(tmp_path: Path, body: str) -> ProbeResult:
    """The clean stand-in with `body` appended to its modeling file; the model's forward calls what it defines."""
    modeling = CLEAN_MODELING + textwrap.dedent(body) + called_from_forward(body)
    return run(standin(tmp_path / "model", modeling, auto_map=REACHED))


# ---------------------------------------------------------------- native and clean


def test_native_model_runs_no_remote_code(tmp_path):
    folder = tmp_path / "native"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 8}))
    result = run(folder)
    assert [(f.code, f.status) for f in result.findings] == [("remote_code.none", Status.PASS)]


def test_clean_standin_untrusted_says_what_trusting_would_run(tmp_path):
    result = run(standin(tmp_path / "model"))
    modules = one(result, "remote_code.modules")
    assert modules.status is Status.WARN and "--dsocr-trust-remote-code" in modules.fix
    assert [row["file"] for row in modules.table] == ["configuration_toy.py", "modeling_toy.py"]
    assert all(len(row["sha256"]) == 64 for row in modules.table)
    assert codes(result)["remote_code.no-hazards"] is Status.PASS
    assert codes(result)["remote_code.transformers-imports"] is Status.PASS
    assert codes(result)["remote_code.packages"] is Status.PASS
    assert "remote_code.unpinned" not in codes(result)  # pinning is judged only when trust is given


def test_auto_map_on_a_native_model_type_only_warns_without_trust(tmp_path):
    folder = standin(tmp_path / "model", CLEAN_MODELING + "import subprocess\nsubprocess.run(['id'])\n", model_type="llama")
    untrusted = run(folder)
    assert one(untrusted, "remote_code.modules").status is Status.PASS
    assert one(untrusted, "remote_code.process").status is Status.WARN  # never runs without trust
    trusted = run(folder, trust_remote_code=True, revision=COMMIT)
    assert one(trusted, "remote_code.process").status is Status.FAIL  # trust makes transformers prefer auto_map


# ---------------------------------------------------------------- transformers imports


@pytest.mark.parametrize("model_type", ["DeepseekOCR", "toy_remote"])
def test_llama_flash_attention_import_fails_on_current_passes_on_legacy(tmp_path, model_type):
    folder = standin(tmp_path / "model", LLAMA_FA2 + CLEAN_MODELING, model_type=model_type)
    result = run(folder)
    if LEGACY:
        assert codes(result)["remote_code.transformers-imports"] is Status.PASS
        assert "remote_code.missing-symbol" not in codes(result)
        return
    f = one(result, "remote_code.missing-symbol")
    assert f.status is Status.FAIL
    assert "LlamaFlashAttention2" in f.title and transformers.__version__ in f.title
    assert f.table[0]["imported at"] == "modeling_toy.py:1"
    assert f.table[0]["transformers that have it"] == "<=4.47.1"
    if model_type == "DeepseekOCR":
        assert "pip install 'transformers>=4.46,<=4.47.1' 'peft<=0.17.1'" in f.fix
    else:
        assert "pip install 'transformers<=4.47.1'" in f.fix and "transformers==4.46.3" in f.fix


def test_a_name_no_transformers_has_fails_on_every_stack(tmp_path):
    result = planted(tmp_path, "from transformers import DsocrNoSuchClass4711\n")
    f = one(result, "remote_code.missing-symbol")
    assert f.status is Status.FAIL and "DsocrNoSuchClass4711" in f.title
    assert f.to_json()["table"][0]["transformers that have it"] == "not in the version facts"
    assert "transformers==4.46.3" in f.fix  # the release config.json was saved with


def test_guarded_imports_warn(tmp_path):
    result = planted(
        tmp_path,
        """
        try:
            from transformers import DsocrNoSuchClass4711
        except ImportError:
            DsocrNoSuchClass4711 = None
        try:
            from transformers.models.llama.modeling_llama import LlamaFlashAttention2
        except ImportError:
            LlamaFlashAttention2 = None
        """,
    )
    assert "remote_code.missing-symbol" not in codes(result)
    f = one(result, "remote_code.optional-symbol")
    assert f.status is Status.WARN
    assert ("LlamaFlashAttention2" in f.title) is not LEGACY
    assert all(row["on import"] == "no" for row in f.to_json()["table"])


def test_replayed_transformers_version_is_judged_by_the_version_facts(tmp_path):
    folder = standin(tmp_path / "model", LLAMA_FA2 + CLEAN_MODELING, model_type="DeepseekOCR")
    old = run(folder, facts=linux_cpu(transformers="4.45.0", torch=INSTALLED["torch"]))
    assert "4.45.0" in one(old, "remote_code.transformers-imports").title
    new = run(folder, facts=linux_cpu(transformers="5.0.0", torch=INSTALLED["torch"]))
    assert "transformers 5.0.0" in one(new, "remote_code.missing-symbol").title


# ---------------------------------------------------------------- third-party packages


def test_missing_third_party_package_fails_and_guarded_one_warns(tmp_path):
    result = planted(
        tmp_path,
        """
        import dsocr_absent_required
        def later():
            import dsocr_absent_in_function
        try:
            import dsocr_absent_optional
        except ImportError:
            dsocr_absent_optional = None
        """,
    )
    required = one(result, "remote_code.missing-package")
    assert required.status is Status.FAIL
    assert required.fix == "`pip install dsocr-absent-required dsocr-absent-in-function`"
    optional = one(result, "remote_code.optional-package")
    assert optional.status is Status.WARN and "dsocr-absent-optional" in optional.fix


def test_missing_package_fix_uses_the_pip_name(tmp_path):
    import importlib.util

    if importlib.util.find_spec("cv2") is not None:
        pytest.skip("opencv is installed here")
    result = planted(tmp_path, "import cv2\n")
    assert one(result, "remote_code.missing-package").fix == "`pip install opencv-python`"


# ---------------------------------------------------------------- planted hazards


# (planted code, finding code, status, matched call, line of the call within the planted code)
PLANTED = [
    ("import requests\nrequests.get('https://example.com/payload')\n", "remote_code.network", Status.FAIL, "requests.get", 2),
    ("import urllib.request\ndef fetch(u):\n    return urllib.request.urlopen(u)\n", "remote_code.network", Status.FAIL, "urllib.request.urlopen", 3),
    ("from huggingface_hub import hf_hub_download\ndef w():\n    hf_hub_download('a/b', 'c')\n", "remote_code.network", Status.FAIL, "huggingface_hub.hf_hub_download", 3),
    ("import subprocess\ndef f():\n    subprocess.check_output(['id'])\n", "remote_code.process", Status.FAIL, "subprocess.check_output", 3),
    ("import os\nos.system('id')\n", "remote_code.process", Status.FAIL, "os.system", 2),
    ("def f(s):\n    return eval(s)\n", "remote_code.eval", Status.FAIL, "eval", 2),
    ("exec('x = 1')\n", "remote_code.eval", Status.FAIL, "exec", 1),
    ("import pickle\ndef f(b):\n    return pickle.loads(b)\n", "remote_code.pickle", Status.FAIL, "pickle.loads", 3),
    ("def f():\n    torch.load('x.bin', weights_only=False)\n", "remote_code.torch-load", Status.FAIL, "torch.load", 2),
    ("def f():\n    torch.load('x.bin')\n", "remote_code.torch-load", Status.WARN, "torch.load", 2),
    ("def f():\n    open('/etc/profile.d/x.sh', 'w').write('x')\n", "remote_code.file-write", Status.FAIL, "open", 2),
    ("from pathlib import Path\nPath.home().joinpath('.bashrc').write_text('x')\n", "remote_code.file-write", Status.FAIL, ".write_text()", 2),
    ("import shutil\ndef f(p):\n    shutil.rmtree(p)\n", "remote_code.file-write", Status.FAIL, "shutil.rmtree", 3),
    ("import base64\nexec(base64.b64decode('cHJpbnQoJ2hpJyk='))\n", "remote_code.obfuscated", Status.FAIL, "base64.b64decode(<literal>)", 2),
    ("def f(mask):\n    return mask.cuda()\n", "remote_code.cuda", Status.WARN, ".cuda()", 2),
]


@pytest.mark.parametrize(("body", "code", "status", "call", "line_in_body"), PLANTED, ids=[f"{p[1]}-{p[3]}" for p in PLANTED])
def test_planted_pattern_is_flagged_with_file_and_line(tmp_path, body, code, status, call, line_in_body):
    result = planted(tmp_path, body)
    f = one(result, code)
    assert f.status is status
    where = f"modeling_toy.py:{len(textwrap.dedent(CLEAN_MODELING).splitlines()) + line_in_body}"
    assert f.table[0]["where"] == where and f.table[0]["call"] == call
    assert where in f.title and where in f.fix
    assert "remote_code.no-hazards" not in codes(result)


def test_cuda_fix_names_to_device(tmp_path):
    f = one(planted(tmp_path, "def f(mask):\n    return mask.cuda()\n"), "remote_code.cuda")
    assert ".to(device)" in f.fix


def test_torch_load_without_weights_only_fails_on_a_torch_that_unpickles_by_default(tmp_path):
    body = "def f():\n    torch.load('x.bin')\n"
    folder = standin(tmp_path / "model", CLEAN_MODELING + body + called_from_forward(body), auto_map=REACHED)
    result = run(folder, facts=linux_cpu(transformers=INSTALLED["transformers"], torch="2.5.1"))
    assert one(result, "remote_code.torch-load").status is Status.FAIL


def test_torch_load_with_weights_only_true_is_clean(tmp_path):
    result = planted(tmp_path, "def f():\n    torch.load('x.bin', weights_only=True)\n")
    assert codes(result)["remote_code.no-hazards"] is Status.PASS


def test_hazards_in_an_imported_module_are_found(tmp_path):
    folder = standin(
        tmp_path / "model",
        "from .blocks import fetch\n" + CLEAN_MODELING + called_from_forward("def fetch():\n    pass\n"),
        extra={"blocks.py": "import socket\ndef fetch():\n    socket.create_connection(('example.com', 80))\n"},
        auto_map=REACHED,
    )
    result = run(folder)
    network = one(result, "remote_code.network")
    assert network.table[0]["where"] == "blocks.py:3" and network.status is Status.FAIL
    assert network.to_json()["table"][0]["runs"] == (
        "in the training step: ToyModelReached.forward → fetch → socket.create_connection")
    assert "blocks.py" in [row["file"] for row in one(result, "remote_code.modules").table]


# ---------------------------------------------------------------- broken references


def test_missing_referenced_module_fails(tmp_path):
    folder = standin(tmp_path / "model", "from .deepencoder import build_sam\n" + CLEAN_MODELING)
    f = one(run(folder), "remote_code.missing-module")
    assert f.status is Status.FAIL and "deepencoder.py" in f.title
    assert f.to_json()["table"] == [{"missing file": "deepencoder.py", "referenced by": "import at modeling_toy.py:1"}]


def test_auto_map_entry_without_its_file_fails(tmp_path):
    folder = standin(tmp_path / "model", auto_map={"AutoModel": "modeling_toy.ToyModel", "AutoProcessor": "processing_toy.P"})
    f = one(run(folder), "remote_code.missing-module")
    assert f.table[0]["missing file"] == "processing_toy.py"


def test_unparsable_module_fails(tmp_path):
    folder = standin(tmp_path / "model", "def broken(:\n")
    f = one(run(folder), "remote_code.unreadable")
    assert f.status is Status.FAIL and "modeling_toy.py" in f.title


# ---------------------------------------------------------------- trust policy


def test_trusted_without_a_pinned_commit_fails(tmp_path):
    folder = standin(tmp_path / "model")
    for revision in (None, "main"):
        f = one(run(folder, trust_remote_code=True, revision=revision), "remote_code.unpinned")
        assert f.status is Status.FAIL and "--dsocr-revision" in f.fix
        assert set(f.evidence["sha256"]) == {"configuration_toy.py", "modeling_toy.py"}


def test_allow_unpinned_turns_the_failure_into_a_warning(tmp_path):
    folder = standin(tmp_path / "model")
    f = one(run(folder, trust_remote_code=True, allow_unpinned=True), "remote_code.unpinned")
    assert f.status is Status.WARN


def test_trusted_and_pinned_by_content_records_the_digest_and_hashes(tmp_path):
    import hashlib

    from dsocr_probe.inputs.pinning import content_digest

    folder = standin(tmp_path / "model")
    digest = content_digest(folder)
    result = run(folder, trust_remote_code=True, revision=digest)
    f = one(result, "remote_code.pinned")
    assert f.status is Status.PASS and digest in f.title
    assert f.evidence["content digest (--dsocr-revision)"] == digest
    assert f.evidence["sha256"]["modeling_toy.py"] == hashlib.sha256((folder / "modeling_toy.py").read_bytes()).hexdigest()
    assert one(result, "remote_code.modules").status is Status.PASS


def test_a_hub_cache_snapshot_resolves_its_commit_and_refuses_another(tmp_path):
    folder = standin(tmp_path / "models--team--ocr" / "snapshots" / COMMIT)
    f = one(run(folder, trust_remote_code=True, revision=COMMIT), "remote_code.pinned")
    assert f.status is Status.PASS and f.evidence["resolved commit"] == COMMIT and not f.detail
    other = "b" * 40
    assert one(run(folder, trust_remote_code=True, revision=other), "remote_code.prerequisite").status is Status.SKIP
    result = probe("model_api", context(linux_cpu(**INSTALLED), model=str(folder), revision=other))
    f = one(result, "target.revision-mismatch")  # the model probe reports the target; the others skip
    assert f.status is Status.FAIL and COMMIT in f.title and other in f.title


@pytest.mark.parametrize("trust", [False, True])
def test_the_probe_never_imports_the_remote_code(tmp_path, trust):
    marker = tmp_path / "imported.txt"
    trap = f"open({str(marker)!r}, 'w').write('imported')\nraise RuntimeError('the scan imported me')\n"
    folder = standin(tmp_path / "model", trap + CLEAN_MODELING, extra={"configuration_toy.py": trap + CONFIGURATION})
    before = set(sys.modules)
    result = run(folder, trust_remote_code=trust, revision=COMMIT)
    assert not marker.exists()
    assert not [m for m in set(sys.modules) - before if "toy" in m or m.startswith("transformers_modules")]
    assert one(result, "remote_code.file-write").status is Status.FAIL  # the trap is reported, not run


@pytest.mark.parametrize(
    "options, stopped_by",
    [
        (dict(), "loading.untrusted"),
        (dict(trust_remote_code=True), "loading.unpinned"),
        (dict(trust_remote_code=True, revision="main"), "loading.unpinned"),
    ],
)
def test_loading_never_imports_untrusted_or_unpinned_remote_code(tmp_path, options, stopped_by):
    import torch

    from dsocr_probe.model import loading
    from dsocr_probe.findings import InputError

    marker = tmp_path / "imported.txt"
    trap = f"open({str(marker)!r}, 'w').write('imported')\n"
    folder = standin(tmp_path / "model", extra={"configuration_toy.py": trap + CONFIGURATION})
    (folder / "model.safetensors").write_bytes(b"")
    ctx = context(linux_cpu(**INSTALLED), model=str(folder), device="cpu", **options)
    for load in (loading.model_class, lambda ctx: loading.load_model(ctx, "cpu", torch.float32)):
        with pytest.raises(InputError) as error:
            load(ctx)
        assert error.value.code == stopped_by and error.value.status is Status.SKIP and error.value.variant == "model"
    step = probe("step", ctx)
    assert [f.status for f in step.findings] == [Status.SKIP]
    assert not marker.exists()
    # The control: accepting the risk does import the code (so the trap above would have fired).
    with pytest.raises(Exception):
        loading.load_model(context(linux_cpu(**INSTALLED), model=str(folder), trust_remote_code=True,
                                   allow_unpinned=True), "cpu", torch.float32)
    assert marker.exists()


def test_the_v1_standin_fails_on_current_and_passes_on_legacy(tmp_path):
    standin_mod = pytest.importorskip("dsocr_probe.demo.standin")
    if not hasattr(standin_mod, "write_v1_standin"):
        pytest.skip("the DeepSeek-OCR v1 stand-in writer is not available")
    folder = standin_mod.write_v1_standin(tmp_path / "DeepSeek-OCR")
    result = run(folder, trust_remote_code=True, revision=COMMIT)
    if LEGACY:
        assert "remote_code.missing-symbol" not in codes(result)
    else:
        f = one(result, "remote_code.missing-symbol")
        assert "LlamaFlashAttention2" in f.title and "'transformers>=4.46,<=4.47.1' 'peft<=0.17.1'" in f.fix
