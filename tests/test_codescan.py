"""The static scanner: imports, the modules trust_remote_code would load, and risky calls — from text only."""

from __future__ import annotations

import hashlib
import json
import sys
import textwrap
from pathlib import Path

import pytest

from dsocr_probe import codescan
from dsocr_probe.messages import word


def scan(source: str) -> codescan.ModuleScan:
    return codescan.scan_source(textwrap.dedent(source), "m.py")


def kinds(source: str) -> list[tuple[str, int, str]]:
    return [(h.kind, h.line, h.call) for h in scan(source).hazards]


def write_model(folder: Path, files: dict[str, str], auto_map: dict | None = None, **json_files: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_type": "toy_remote"}
    if auto_map is not None:
        config["auto_map"] = auto_map
    (folder / "config.json").write_text(json.dumps(config))
    for name, data in json_files.items():
        (folder / f"{name}.json").write_text(json.dumps(data))
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return folder


# ---------------------------------------------------------------- imports


def test_imports_record_guard_and_scope():
    s = scan(
        """
        import os.path as osp
        from transformers.models.llama.modeling_llama import LlamaFlashAttention2, LlamaAttention
        try:
            from flash_attn import flash_attn_func
        except ImportError:
            flash_attn_func = None
        if is_flash_attn_2_available():
            import flash_attn_extra
        def f():
            import einops
        """
    )
    by_module = {i.module: i for i in s.imports}
    assert by_module["transformers.models.llama.modeling_llama"].names == ("LlamaFlashAttention2", "LlamaAttention")
    assert not by_module["transformers.models.llama.modeling_llama"].guarded
    assert by_module["flash_attn"].guarded and by_module["flash_attn_extra"].guarded
    assert by_module["einops"].in_function and not by_module["einops"].guarded
    assert not by_module["os.path"].in_function


def test_a_try_that_catches_something_else_does_not_guard_an_import():
    s = scan(
        """
        try:
            import addict
        except KeyError:
            pass
        """
    )
    assert not s.imports[0].guarded


def test_syntax_error_is_returned_not_raised():
    s = scan("def broken(:\n")
    assert s.error and "SyntaxError" in s.error and not s.imports


def test_pip_names_for_import_names_that_differ():
    assert codescan.pip_name("PIL") == "pillow"
    assert codescan.pip_name("cv2") == "opencv-python"
    assert codescan.pip_name("flash_attn.flash_attn_interface") == "flash-attn"
    assert codescan.pip_name("einops") == "einops"
    assert codescan.is_stdlib("os.path") and not codescan.is_stdlib("einops")
    assert codescan.is_installed("packaging") and not codescan.is_installed("dsocr_no_such_package_4711")


# ---------------------------------------------------------------- hazards


def test_network_calls_through_aliases():
    found = kinds(
        """
        import requests
        import urllib.request
        from huggingface_hub import hf_hub_download
        import socket as s
        requests.get("https://example.com/x")
        def f():
            urllib.request.urlopen("https://example.com")
            hf_hub_download("a/b", "c.bin")
            s.create_connection(("example.com", 80))
        """
    )
    assert found == [
        ("network", 6, "requests.get"),
        ("network", 8, "urllib.request.urlopen"),
        ("network", 9, "huggingface_hub.hf_hub_download"),
        ("network", 10, "socket.create_connection"),
    ]
    first = scan("import requests\nrequests.get('x')\ndef f():\n    requests.post('y')\n").hazards
    assert [h.in_function for h in first] == [False, True]


def test_process_spawning():
    found = kinds(
        """
        import os, subprocess as sp
        from os import system as run_it
        sp.Popen(["ls"])
        os.system("ls")
        os.popen("ls")
        os.execvp("ls", ["ls"])
        run_it("ls")
        getattr(os, "system")("ls")
        """
    )
    assert [c for _, _, c in found] == ["subprocess.Popen", "os.system", "os.popen", "os.execvp", "os.system", "os.system"]
    assert {k for k, _, _ in found} == {"process"}


def test_eval_exec_compile_but_not_methods_named_eval():
    found = kinds(
        """
        import re
        eval("1 + 1")
        exec("x = 1")
        code = compile("1", "f", "eval")
        pattern = re.compile("x")
        model.eval()
        """
    )
    assert found == [("eval", 3, "eval"), ("eval", 4, "exec"), ("eval", 5, "compile")]


def test_unpickling():
    found = kinds(
        """
        import pickle
        import numpy as np
        pickle.loads(b"")
        with open("x.pkl", "rb") as f:
            pickle.load(f)
        np.load("a.npy", allow_pickle=True)
        np.load("b.npy")
        """
    )
    assert found == [("pickle", 4, "pickle.loads"), ("pickle", 6, "pickle.load"), ("pickle", 7, "numpy.load")]


def test_torch_load_needs_weights_only_true():
    hazards = scan(
        """
        import torch
        torch.load("a.bin")
        torch.load("b.bin", weights_only=False)
        torch.load("c.bin", weights_only=True)
        torch.load("d.bin", map_location="cpu", weights_only=True)
        """
    ).hazards
    assert [(h.kind, h.line, word(h.note_message, "en")) for h in hazards] == [
        ("torch-load", 3, "no weights_only argument"),
        ("torch-load", 4, "weights_only=False, not True"),
    ]
    assert hazards[0].note == codescan.NO_WEIGHTS_ONLY


def test_writes_outside_the_cache_but_not_to_a_caller_given_folder():
    found = kinds(
        """
        import os, shutil
        from pathlib import Path
        def save(output_path, text):
            open(f"{output_path}/result.mmd", "w").write(text)   # the caller's folder: fine
            open("relative.txt", "r").read()                       # reading: fine
            open("/etc/cron.d/x", "w")
            open(os.path.expanduser("~/.bashrc"), "a")
            Path.home().joinpath(".ssh", "authorized_keys").write_text(text)
            (Path("/tmp") / "drop").write_bytes(b"")
            shutil.rmtree(output_path)
            os.remove("/var/log/x")
        """
    )
    assert found == [
        ("file-write", 7, "open"),
        ("file-write", 8, "open"),
        ("file-write", 9, ".write_text()"),
        ("file-write", 10, ".write_bytes()"),
        ("file-write", 11, "shutil.rmtree"),
        ("file-write", 12, "os.remove"),
    ]


def test_obfuscated_strings():
    blob = "aW1wb3J0IG9zOyBvcy5zeXN0ZW0oImN1cmwgaHR0cHM6Ly9leGFtcGxlLmNvbS94IHwgc2giKQ" * 2
    found = kinds(
        f'''
        """A docstring is text, never a finding: {blob}"""
        import base64, codecs, builtins
        exec(base64.b64decode("cHJpbnQoMSk="))
        PAYLOAD = "{blob}"
        name = chr(101) + chr(118) + chr(97) + chr(108)
        other = "".join(chr(c) for c in [101, 118, 97, 108])
        fn = getattr(builtins, name)
        hidden = codecs.decode("riny", "rot13")
        SHA = "{"ab" * 32}"
        '''
    )
    assert ("eval", 4, "exec") in found
    obfuscated = [(line, call) for kind, line, call in found if kind == "obfuscated"]
    assert obfuscated == [
        (4, "base64.b64decode(<literal>)"),
        (5, "<base64 literal>"),
        (6, "chr(...) + chr(...) + ..."),
        (7, "chr(...) for ..."),
        (8, "getattr(builtins, <computed>)"),
        (9, "codecs.decode(<literal>)"),
    ]  # a 64-hex digest (line 10) and the docstring are not flagged


def test_decoding_data_that_is_not_a_literal_is_not_obfuscation():
    assert kinds("import base64\ndef f(data):\n    return base64.b64decode(data)\n") == []


def test_hard_coded_cuda():
    found = kinds(
        """
        import torch
        mask = mask.cuda()
        x = x.to("cuda")
        y = torch.zeros(3, device="cuda:0")
        z = torch.zeros(3, device=input_ids.device)
        ok = torch.cuda.is_available()
        """
    )
    assert found == [("cuda", 3, ".cuda()"), ("cuda", 4, ".to('cuda')"), ("cuda", 5, "device='cuda:0'")]


def test_main_block_and_function_bodies_do_not_run_on_import():
    hazards = scan(
        """
        import os
        os.system("at import")
        def f():
            os.system("when called")
        if __name__ == "__main__":
            os.system("as a script")
        """
    ).hazards
    assert [(h.line, h.in_function) for h in hazards] == [(3, False), (5, True), (7, True)]


def test_clean_model_code_has_no_hazards():
    assert kinds(
        """
        import math
        import torch
        from torch import nn

        class Block(nn.Module):
            def __init__(self, dim):
                super().__init__()
                self.proj = nn.Linear(dim, dim)

            def forward(self, x):
                return self.proj(x).to(x.device) * math.sqrt(2)
        """
    ) == []


# ---------------------------------------------------------------- which modules would run


def test_collect_follows_auto_map_and_imports_transitively(tmp_path):
    folder = write_model(
        tmp_path / "m",
        {
            "configuration_toy.py": "X = 1\n",
            "modeling_toy.py": "from .configuration_toy import X\nfrom . import blocks\nimport conversation\n",
            "blocks.py": "from .deep import Y\n",
            "deep.py": "Y = 2\n",
            "conversation.py": "Z = 3\n",
            "tokenization_toy.py": "T = 4\n",
            "processing_toy.py": "P = 5\n",
            "unused.py": "import os\nos.system('never loaded')\n",
        },
        auto_map={"AutoConfig": "configuration_toy.ToyConfig", "AutoModel": "modeling_toy.ToyModel"},
        tokenizer_config={"auto_map": {"AutoTokenizer": ["tokenization_toy.ToySlow", None]}},
        processor_config={"auto_map": {"AutoProcessor": "processing_toy.ToyProcessor"}},
    )
    code = codescan.collect(folder)
    files = [m.file for m in code.modules]
    assert set(files) == {"configuration_toy.py", "modeling_toy.py", "blocks.py", "deep.py", "conversation.py",
                          "tokenization_toy.py", "processing_toy.py"}
    assert "unused.py" not in files and not code.missing
    deep = next(m for m in code.modules if m.file == "deep.py")
    assert deep.sha256 == hashlib.sha256((folder / "deep.py").read_bytes()).hexdigest()
    assert deep.size == (folder / "deep.py").stat().st_size
    assert deep.reached_from.where == "blocks.py:1"  # the import in blocks.py
    assert {str(e) for e in code.entries} >= {"tokenizer_config.json: AutoTokenizer → tokenization_toy.ToySlow"}


def test_collect_reports_missing_and_external_modules(tmp_path):
    folder = write_model(
        tmp_path / "m",
        {"modeling_toy.py": "from .gone import Z\n"},
        auto_map={
            "AutoConfig": "configuration_toy.ToyConfig",
            "AutoModel": "modeling_toy.ToyModel",
            "AutoModelForCausalLM": "other/repo--modeling_other.Other",
        },
    )
    code = codescan.collect(folder)
    config, gone = code.missing  # named by an auto_map entry, and by an import
    assert (config.file, str(config.referenced_from)) == (
        "configuration_toy.py", "config.json: AutoConfig → configuration_toy.ToyConfig")
    assert (gone.file, gone.referenced_from.where) == ("gone.py", "modeling_toy.py:1")
    assert [e.repo for e in code.external] == ["other/repo"]


def test_relative_import_out_of_the_folder_is_missing_even_if_the_file_exists(tmp_path):
    (tmp_path / "outside.py").write_text("import os\nos.system('x')\n")
    folder = write_model(tmp_path / "m", {"modeling_toy.py": "from ..outside import thing\n"},
                         auto_map={"AutoModel": "modeling_toy.ToyModel"})
    code = codescan.collect(folder)
    assert [m.file for m in code.modules] == ["modeling_toy.py"]
    assert [m.file for m in code.missing] == ["../outside.py"]


def test_hub_cache_snapshot_with_symlinked_files(tmp_path):
    """In the hub cache a snapshot's files are symlinks into a blob store outside the folder."""
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    (blobs / "b1").write_text("from .configuration_toy import X\n")
    (blobs / "b2").write_text("X = 1\n")
    snapshot = write_model(tmp_path / "snapshots" / ("a" * 40), {}, auto_map={"AutoModel": "modeling_toy.ToyModel"})
    (snapshot / "modeling_toy.py").symlink_to(blobs / "b1")
    (snapshot / "configuration_toy.py").symlink_to(blobs / "b2")
    code = codescan.collect(snapshot)
    assert [m.file for m in code.modules] == ["modeling_toy.py", "configuration_toy.py"] and not code.missing
    assert code.modules[1].sha256 == hashlib.sha256(b"X = 1\n").hexdigest()


def test_bad_auto_map_json_is_reported(tmp_path):
    folder = write_model(tmp_path / "m", {}, auto_map={"AutoModel": 3})
    (folder / "tokenizer_config.json").write_text("{not json")
    code = codescan.collect(folder)
    assert [(e.file, e.problem) for e in code.config_errors] == [
        ("config.json", "not-a-reference"), ("tokenizer_config.json", "unreadable")]
    assert code.config_errors[0].found == "3" and not code.entries


def test_collect_never_imports_the_code(tmp_path):
    marker = tmp_path / "imported.txt"
    folder = write_model(
        tmp_path / "m",
        {"modeling_trap.py": f"open({str(marker)!r}, 'w').write('ran')\nraise SystemExit('imported')\n"},
        auto_map={"AutoModel": "modeling_trap.Trap"},
    )
    code = codescan.collect(folder)
    assert [m.file for m in code.modules] == ["modeling_trap.py"]
    assert [h.kind for h in code.hazards()] == ["file-write"]
    assert not marker.exists()
    assert not any("modeling_trap" in name for name in sys.modules)


@pytest.mark.parametrize("value", [["tokenization_toy.Slow", "tokenization_toy.Fast"], {"AutoTokenizer": [None, "tokenization_toy.Fast"]}])
def test_tokenizer_auto_map_shapes(tmp_path, value):
    folder = write_model(tmp_path / "m", {"tokenization_toy.py": "X = 1\n"}, tokenizer_config={"auto_map": value})
    code = codescan.collect(folder)
    assert [m.file for m in code.modules] == ["tokenization_toy.py"]
