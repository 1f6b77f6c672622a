"""The cuda probe: the GPU, its kernels in this torch build, bf16."""

from ..catalog import N_, Text, define

define("cuda.no-torch", Text(N_("torch is not installed"), fix=N_("See the environment probe.")))

_NO_GPU_DETAIL = N_("The step probe runs on the CPU instead; its memory figures are CPU RSS, not VRAM.")
_NO_GPU_FIX = N_("Run the probe on the training machine to check its GPU.")
define("cuda.no-gpu", {
    "cpu-build": Text(N_("No GPU to check: this torch is a CPU build"), detail=_NO_GPU_DETAIL, fix=_NO_GPU_FIX),
    "no-device": Text(N_("No GPU to check: no CUDA device is visible to torch (built with CUDA %(torch_cuda)s)"),
                      detail=_NO_GPU_DETAIL, fix=_NO_GPU_FIX),
})

define("cuda.no-kernels", Text(
    N_("This torch build (CUDA %(torch_cuda)s) has no kernels for %(device)s (%(sm)s)"),
    detail=N_("torch.cuda.get_arch_list() = %(arch_list)s: no %(sm)s cubin and no PTX it could be compiled from. "
              "torch.cuda.is_available() still says True, but every CUDA operation fails with 'CUDA error: no "
              "kernel image is available for execution on the device'. The warning '%(sm)s is not compatible "
              "with the current PyTorch installation' is not harmless."),
    fix=N_("Install %(build)s: `pip install --force-reinstall torch torchvision --index-url "
           "https://download.pytorch.org/whl/cu128` (on Windows PyPI has CPU-only torch wheels)."),
))

define("cuda.kernel-failed", Text(
    N_("A CUDA kernel failed on %(device)s: %(error)s"),
    fix=N_("Reinstall a torch build that matches the driver (`nvidia-smi` shows the driver's CUDA version)."),
))

define("cuda.device", Text(N_("%(device)s (%(sm)s) has kernels in this torch build")))

define("cuda.no-bf16", Text(
    N_("%(device)s (%(sm)s) has no bf16 (needs compute capability >= 8.0)"),
    detail=N_("DeepSeek-OCR ships bf16 weights; in fp16 its activations can overflow."),
    fix=N_("Set `bf16: false` and `fp16: true` in the training config, or load the model in float32."),
))
