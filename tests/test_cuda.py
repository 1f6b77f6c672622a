import pytest

from dsocr_probe.inputs.facts import DeviceFacts
from dsocr_probe.probes.cuda import has_kernels
from probing import codes, context, linux_cpu, probe

CU121 = ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"]
CU128 = CU121 + ["sm_100", "sm_120"]


@pytest.mark.parametrize(
    "cap, arches, expected",
    [
        ((12, 0), CU121, False),  # RTX 50xx on cu121: the seed team's machine
        ((12, 0), CU128, True),
        ((8, 9), CU121, True),  # sm_86 cubin runs on 8.9 (same major)
        ((9, 0), ["sm_80", "compute_80"], True),  # PTX is JIT-compiled for newer cards
        ((9, 0), ["sm_80", "sm_86"], False),
        ((7, 5), ["sm_80", "sm_90"], False),
    ],
)
def test_has_kernels(cap, arches, expected):
    assert has_kernels(cap, arches) is expected


def _gpu(cap, arches, torch_cuda="12.1"):
    facts = linux_cpu()
    facts.cuda_available = True
    facts.torch_cuda = torch_cuda
    facts.arch_list = arches
    facts.devices = [DeviceFacts(0, "Test GPU", cap, 16 * 2**30)]
    return facts


def test_sm120_on_cu121_is_no_go_and_names_the_build():
    result = probe("cuda", context(_gpu((12, 0), CU121)))
    f = next(f for f in result.findings if f.code == "cuda.no-kernels")
    assert f.status.value == "fail"
    assert "sm_120" in f.title and "cu128" in f.fix and "no kernel image" in f.detail


def test_supported_card_passes_and_reports_evidence():
    result = probe("cuda", context(_gpu((12, 0), CU128, "12.8")))
    assert codes(result) == {"cuda.device": "pass"}
    assert result.findings[0].to_json()["evidence"]["bf16"] == "yes"


def test_no_bf16_before_ampere():
    assert codes(probe("cuda", context(_gpu((7, 5), CU121))))["cuda.no-bf16"] == "warn"


def test_without_gpu_it_skips_with_a_reason():
    result = probe("cuda", context(linux_cpu()))
    assert result.status.value == "skip"
    assert "CPU build" in result.findings[0].title or "no CUDA device" in result.findings[0].title
