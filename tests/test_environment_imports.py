"""Compiled extensions that do not fit torch: imported for real in a fresh interpreter."""

from __future__ import annotations

import os
import sys
import textwrap

from dsocr_probe.inputs import facts
from dsocr_probe.probes.environment import build_of
from probing import codes, context, linux_cpu, probe

NMS = "operator torchvision::nms does not exist"
SYMBOL = ("/site-packages/flash_attn_2_cuda.cpython-311-x86_64-linux-gnu.so: undefined symbol: "
          "_ZN3c105ErrorC2ENS_14SourceLocationENSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE")


def _fake_packages(tmp_path):
    """A torchvision whose operators are missing and a flash_attn whose extension lacks a torch
    symbol, raising what the broken wheels raise; plus a healthy package for contrast."""
    root = tmp_path / "site"
    for name, body in {
        "torchvision": f"import torch\nraise RuntimeError({NMS!r})\n",
        "flash_attn": f"raise ImportError({SYMBOL!r})\n",
        "dsocr_fine_ext": "VALUE = 1\n",
    }.items():
        (root / name).mkdir(parents=True)
        (root / name / "__init__.py").write_text(textwrap.dedent(body))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), *sys.path]))
    return env


def test_imports_run_in_a_fresh_interpreter_and_quote_the_error(tmp_path):
    env = _fake_packages(tmp_path)
    got = facts.import_errors(["torchvision", "flash-attn", "dsocr_fine_ext"], env=env)
    assert got == {"torchvision": f"RuntimeError: {NMS}", "flash-attn": f"ImportError: {SYMBOL}", "dsocr_fine_ext": None}


def test_a_hanging_import_is_left_out_not_reported(tmp_path):
    (tmp_path / "dsocr_slow_ext.py").write_text("import time\ntime.sleep(30)\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    assert facts.import_errors(["dsocr_slow_ext"], env=env, timeout=1) == {}


def test_build_of_reads_the_local_version_part():
    assert build_of("0.28.0+cu130") == "CUDA 13.0"
    assert build_of("2.13.0+cpu") == "CPU"
    assert build_of("2.13.0+cu128") == "CUDA 12.8"
    assert build_of("2.13.0", "12.8") == "CUDA 12.8"
    assert build_of("2.13.0") is None


def _env(**kw):
    f = linux_cpu(torch="2.13.0+cpu", torchvision="0.28.0+cu130", **kw)
    return f


def test_torchvision_for_another_cuda_is_no_go_naming_both_builds(tmp_path):
    env = facts.import_errors(["torchvision"], env=_fake_packages(tmp_path))  # the real message, from a real import
    f_env = _env()
    f_env.import_errors = env
    result = probe("environment", context(f_env))
    f = next(f for f in result.findings if f.code == "environment.torchvision-import")
    assert f.status.value == "fail"
    assert "built for CUDA 13.0" in f.title and "torch 2.13.0+cpu for CPU" in f.title
    assert "torchvision==0.28.*" in f.fix and "CPU" in f.fix and NMS in f.detail
    assert "environment.torchvision-mismatch" not in codes(result)


def test_torchvision_that_imports_is_not_reported_whatever_its_label():
    f_env = _env()
    f_env.import_errors = {"torchvision": None}
    assert "environment.torchvision-import" not in codes(probe("environment", context(f_env)))
    f_env.import_errors = {}  # not checked (replayed facts): nothing claimed
    assert "environment.torchvision-import" not in codes(probe("environment", context(f_env)))


def test_a_wrong_release_pair_is_reported_once():
    f_env = linux_cpu(torch="2.13.0", torchvision="0.20.0")
    f_env.import_errors = {"torchvision": f"RuntimeError: {NMS}"}
    found = codes(probe("environment", context(f_env)))
    assert found["environment.torchvision-mismatch"] == "fail" and "environment.torchvision-import" not in found


def test_flash_attn_built_against_another_torch_is_no_go(tmp_path):
    f_env = linux_cpu(**{"torch": "2.13.0", "flash-attn": "2.7.3"})
    f_env.import_errors = facts.import_errors(["flash-attn"], env=_fake_packages(tmp_path))
    f = next(f for f in probe("environment", context(f_env)).findings if f.code == "environment.flash-attn-import")
    assert f.status.value == "fail" and "undefined symbol" in f.title and "2.7.3" in f.title
    assert "flash-attn==2.7.3" in f.fix and "torch 2.13" in f.fix and "sdpa" in f.fix
    f_env.import_errors = {"flash-attn": None}
    assert "environment.flash-attn-import" not in codes(probe("environment", context(f_env)))
