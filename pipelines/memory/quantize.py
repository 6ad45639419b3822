"""Int8 weight quantization for the LMs, text encoders and UNets, and the CUDA 8/4-bit load configs.

CPU (what runs here):
- weights are quantized by torchao (`Int8Tensor.from_hp`, symmetric, one scale per output row);
- two ways to run them:
  * "int8pack": our `Int8Linear` keeps torchao's int8 rows + scales and multiplies with torch's CPU
    weight-only kernel `torch._weight_int8pack_mm`, activations cast to bf16 for the matmul only.
    On this AMX Xeon a 576->1536 gemv took 110 us vs 261 us in fp32;
  * "torchao": torchao's own `quantize_(m, Int8WeightOnlyConfig())` tensor subclass. Its eager CPU
    path converts the whole int8 weight to fp32 on every call (689 us for the same gemv), so it
    saves memory but costs speed; kept as the fallback where the int8pack kernel is missing or slow.
  "auto" times both on one layer-sized gemv once per process and takes the faster.
- transformers' GPT-2 uses `Conv1D` (weight stored [in, out]); it is converted to nn.Linear first.
- `QuantReport` says what was quantized (module count, bytes before/after), for the UI.

CUDA (cannot run here: no GPU, no bitsandbytes): the load-time configs diffusers'
`PipelineQuantizationConfig` and transformers' `BitsAndBytesConfig` are built by
`cuda_load_config`, which returns no config plus the reason when the backend or GPU is missing.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

MB = 1024**2
# names never quantized by default: tiny or precision-critical layers (time embeddings, conv-ish heads)
DEFAULT_SKIP: tuple[str, ...] = ("time_embedding", "time_emb_proj", "conv_in", "conv_out")
MIN_FEATURES = 16  # a Linear narrower than this gains nothing from int8 (scales dominate)
INT8PACK_K_MULTIPLE = 16  # torch's int8pack kernel returns garbage (or crashes) unless in_features % 16 == 0


# -- accounting ----------------------------------------------------------------------------------


def _plain(t: torch.Tensor) -> bool:
    return type(t) in (torch.Tensor, nn.Parameter)


def tensor_bytes(t: torch.Tensor) -> int:
    """Storage bytes of a tensor, looking inside torchao tensor subclasses (qdata + scale ...)."""
    if not _plain(t) and hasattr(t, "__tensor_flatten__"):
        names, _ = t.__tensor_flatten__()
        return sum(tensor_bytes(getattr(t, n)) for n in names)
    return t.numel() * t.element_size()


def module_bytes(module: nn.Module) -> int:
    """Parameter + buffer bytes, each storage counted once (tied embeddings are shared)."""
    seen: set[int] = set()
    total = 0
    for t in [*module.parameters(), *module.buffers()]:
        key = t.untyped_storage().data_ptr() if _plain(t) else id(t)
        if key in seen:
            continue
        seen.add(key)
        total += tensor_bytes(t)
    return total


def _modules_in(obj: Any, depth: int = 3) -> list[nn.Module]:
    """nn.Modules held by a model object: itself, a pipeline's components, or dataclass/attribute fields."""
    if isinstance(obj, nn.Module):
        return [obj]
    if depth == 0 or obj is None or isinstance(obj, (str, bytes, int, float, bool)):
        return []
    found: list[nn.Module] = []
    components = getattr(obj, "components", None)  # diffusers pipelines: registered modules only
    values = (
        components.values()
        if isinstance(components, dict)
        else vars(obj).values()
        if hasattr(obj, "__dict__")
        else ()
    )
    for value in values:
        found.extend(_modules_in(value, depth - 1))
    return found


def object_bytes(obj: Any) -> int:
    """Parameter + buffer bytes of every module a loaded-model object holds, each storage once."""
    seen: set[int] = set()
    total = 0
    for module in _modules_in(obj):
        for t in [*module.parameters(), *module.buffers()]:
            key = t.untyped_storage().data_ptr() if _plain(t) else id(t)
            if key not in seen:
                seen.add(key)
                total += tensor_bytes(t)
    return total


@dataclass(frozen=True)
class QuantReport:
    method: str  # e.g. "int8 weight-only (torchao rows, torch int8pack kernel, bf16 activations)"
    modules: int  # Linear layers quantized
    bytes_before: int  # whole module, parameters + buffers
    bytes_after: int
    converted_conv1d: int = 0  # GPT-2 Conv1D layers turned into nn.Linear first
    skipped: tuple[str, ...] = field(default=(), repr=False)  # names left in full precision

    @property
    def ratio(self) -> float:
        return self.bytes_before / max(1, self.bytes_after)

    def describe(self) -> str:
        if not self.modules:
            return f"{self.method}: nothing to quantize"
        return (
            f"{self.method}: {self.modules} layers, "
            f"{self.bytes_before / MB:.1f} → {self.bytes_after / MB:.1f} MB ({self.ratio:.2f}× smaller)"
        )


# -- GPT-2 Conv1D ----------------------------------------------------------------------------------


def _is_conv1d(module: nn.Module) -> bool:
    # transformers.pytorch_utils.Conv1D: y = x @ W + b with W stored [in, out] (nx, nf)
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf") and hasattr(module, "weight")


def conv1d_to_linear(model: nn.Module) -> int:
    """Replace every transformers Conv1D by the equivalent nn.Linear (weight transposed). Returns the count."""
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if not _is_conv1d(child):
                continue
            nx, nf = child.weight.shape  # [in, out]
            linear = nn.Linear(nx, nf, bias=child.bias is not None, device=child.weight.device)
            with torch.no_grad():
                linear.weight = nn.Parameter(child.weight.detach().t().contiguous())  # [out, in]
                if child.bias is not None:
                    linear.bias = nn.Parameter(child.bias.detach().clone())
            linear.requires_grad_(False)
            setattr(parent, name, linear)
            count += 1
    return count


# -- the int8 Linear ---------------------------------------------------------------------------------


def int8_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """torchao symmetric per-row int8: (qdata [N, K] int8, scale [N] fp32), weight ≈ qdata * scale."""
    from torchao.quantization import Int8Tensor
    from torchao.quantization.granularity import PerRow

    q = Int8Tensor.from_hp(weight.detach().float(), PerRow())
    return q.qdata.contiguous(), q.scale.reshape(-1).float()


class Int8Linear(nn.Module):
    """y = x @ (qweight * scale).T + b, run by torch's CPU weight-only int8 kernel.

    Weights and scales are buffers, so they count in module_bytes and move with `.to(device)`.
    """

    def __init__(
        self,
        qweight: torch.Tensor,  # [out, in] int8
        scale: torch.Tensor,  # [out]
        bias: torch.Tensor | None,
        compute_dtype: torch.dtype = torch.bfloat16,  # the kernel's activation dtype (bf16 uses AMX/AVX512-BF16)
    ) -> None:
        super().__init__()
        self.out_features, self.in_features = qweight.shape
        if self.in_features % INT8PACK_K_MULTIPLE:
            raise ValueError(
                f"int8pack needs in_features % {INT8PACK_K_MULTIPLE} == 0, got {self.in_features}"
            )
        self.compute_dtype = compute_dtype
        self.register_buffer("qweight", qweight)
        self.register_buffer("scale", scale.to(compute_dtype))
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    @classmethod
    def from_linear(cls, linear: nn.Linear, compute_dtype: torch.dtype = torch.bfloat16) -> Int8Linear:
        qweight, scale = int8_rows(linear.weight)
        return cls(qweight, scale, linear.bias, compute_dtype)

    @property
    def weight(self) -> torch.Tensor:
        """Dequantized view, for code that inspects `.weight` (dtype/shape); not used in forward."""
        return self.qweight.float() * self.scale.float()[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        # 1. flatten to [tokens, in] in the kernel's activation dtype
        x2 = x.reshape(-1, self.in_features).to(self.compute_dtype).contiguous()
        # 2. int8 weight-only matmul: [tokens, in] x [out, in]^T * scale[out]
        y = torch._weight_int8pack_mm(x2, self.qweight, self.scale)
        y = y.reshape(*shape[:-1], self.out_features).to(x.dtype)
        if self.bias is not None:
            y = y + self.bias.to(x.dtype)
        return y

    def extra_repr(self) -> str:
        dtype = str(self.compute_dtype).replace("torch.", "")
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 weights, {dtype} activations"


@functools.lru_cache(maxsize=1)
def int8pack_speedup(n: int = 1536, k: int = 576, repeats: int = 30) -> float:
    """fp32 time / int8pack time for one LM-sized gemv on this CPU (0.0 when the kernel is missing).

    Measured once per process (a few ms): the kernel is fast with AMX/AVX512-BF16 and can be slow
    elsewhere, so "auto" decides from this number, not from a CPU flag table.
    """
    torch.manual_seed(0)
    x, w = torch.randn(1, k), torch.randn(n, k)
    try:
        qweight, scale = int8_rows(w)
        xb, sb = x.bfloat16(), scale.bfloat16()
        torch._weight_int8pack_mm(xb, qweight, sb)
    except (RuntimeError, NotImplementedError, ImportError) as error:
        log.info("int8pack kernel unavailable: %s", error)
        return 0.0

    def best(fn: Callable[[], Any]) -> float:
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return sorted(times)[len(times) // 2]

    with torch.no_grad():
        fp32 = best(lambda: torch.nn.functional.linear(x, w))
        int8 = best(lambda: torch._weight_int8pack_mm(xb, qweight, sb))
    speedup = fp32 / max(int8, 1e-9)
    log.info("int8pack gemv speed-up on this CPU: %.2f×", speedup)
    return speedup


def choose_backend(device: str | torch.device, backend: str = "auto") -> str:
    """The "int8pack" backend on a CPU where its kernel beats fp32, else "torchao".

    STUDIO_INT8_BACKEND=torchao|int8pack overrides "auto" (torchao: slower on CPU, but fp32
    activations, so greedy text stays token-identical to fp32 more often).
    """
    if backend == "auto":
        backend = os.environ.get("STUDIO_INT8_BACKEND", "auto").strip().lower() or "auto"
    if backend != "auto":
        return backend
    if torch.device(device).type == "cpu" and int8pack_speedup() > 1.0:
        return "int8pack"
    return "torchao"


METHODS = {
    "int8pack": "int8 weight-only (torchao rows, torch int8pack kernel, bf16 activations)",
    "torchao": "int8 weight-only (torchao Int8WeightOnlyConfig)",
}


def _selected(
    model: nn.Module, skip: Iterable[str], min_features: int, k_multiple: int = 1
) -> tuple[list[str], list[str]]:
    skip = tuple(skip)
    chosen, skipped = [], []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        parts = name.split(".")
        narrow = min(module.in_features, module.out_features) < min_features
        if any(s in parts for s in skip) or narrow or module.in_features % k_multiple:
            skipped.append(name)
        else:
            chosen.append(name)
    return chosen, skipped


def quantize_int8(
    model: nn.Module,
    backend: str = "auto",
    skip: Iterable[str] = DEFAULT_SKIP,
    min_features: int = MIN_FEATURES,
) -> QuantReport:
    """Quantize the Linear layers of `model` in place to int8 weights; returns what was done.

    Works for transformers LMs (Llama, GPT-2 via Conv1D conversion), CLIP/BERT text encoders and
    diffusers UNets (attention projections, feed-forwards, linear proj_in/out; convolutions stay).
    """
    before = module_bytes(model)
    converted = conv1d_to_linear(model)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    backend = choose_backend(device, backend)
    k_multiple = INT8PACK_K_MULTIPLE if backend == "int8pack" else 1
    names, skipped = _selected(model, skip, min_features, k_multiple)
    if backend == "int8pack":
        # 1. swap each chosen nn.Linear for an Int8Linear built from torchao's int8 rows
        modules = dict(model.named_modules())
        for name in names:
            parent_name, _, child = name.rpartition(".")
            parent = modules[parent_name] if parent_name else model
            setattr(parent, child, Int8Linear.from_linear(modules[name]))
    elif backend == "torchao":
        from torchao.quantization import Int8WeightOnlyConfig, quantize_

        wanted = set(names)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_(model, Int8WeightOnlyConfig(), filter_fn=lambda m, fqn: fqn in wanted)
    else:
        raise ValueError(f"unknown int8 backend {backend!r}; use auto, int8pack or torchao")
    report = QuantReport(METHODS[backend], len(names), before, module_bytes(model), converted, tuple(skipped))
    log.info("%s", report.describe())
    return report


def quantized_layers(model: nn.Module) -> list[str]:
    """Names of the layers holding int8 weights (either backend), for tests and the UI."""
    out = []
    for name, module in model.named_modules():
        if isinstance(module, Int8Linear):
            out.append(name)
        elif isinstance(module, nn.Linear) and type(module.weight).__name__ == "Int8Tensor":
            out.append(name)
    return out


# -- CUDA load-time configs (bitsandbytes) ---------------------------------------------------------


@dataclass(frozen=True)
class LoadQuantization:
    config: Any | None  # a PipelineQuantizationConfig / BitsAndBytesConfig, or None
    reason: str  # what was chosen, or why nothing was

    def kwargs(self) -> dict[str, Any]:
        """Extra from_pretrained kwargs (empty when no config applies)."""
        return {} if self.config is None else {"quantization_config": self.config}


def bitsandbytes_available() -> bool:
    return importlib.util.find_spec("bitsandbytes") is not None


def cuda_load_config(
    device: str,
    family: str,  # "diffusers" (a whole pipeline) or "transformers" (one model)
    bits: int = 8,
    components: tuple[str, ...] = ("unet", "text_encoder"),
    cuda_available: bool | None = None,
    backend_available: bool | None = None,
) -> LoadQuantization:
    """8-bit/4-bit bitsandbytes loading on CUDA; no config (and the reason) anywhere else.

    `cuda_available`/`backend_available` default to probing, and exist so tests can simulate a GPU.
    """
    if bits not in (4, 8):
        raise ValueError(f"bitsandbytes loads 4 or 8 bits, not {bits}")
    cuda = torch.cuda.is_available() if cuda_available is None else cuda_available
    has_bnb = bitsandbytes_available() if backend_available is None else backend_available
    if not device.startswith("cuda") or not cuda:
        return LoadQuantization(None, f"{bits}-bit bitsandbytes needs a CUDA GPU (device is {device})")
    if not has_bnb:
        return LoadQuantization(None, f"{bits}-bit skipped: bitsandbytes is not installed")
    bnb_kwargs: dict[str, Any] = (
        {"load_in_8bit": True}
        if bits == 8
        else {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": torch.float16}
    )
    if family == "diffusers":
        from diffusers import PipelineQuantizationConfig

        backend = f"bitsandbytes_{bits}bit"
        config = PipelineQuantizationConfig(
            quant_backend=backend, quant_kwargs=bnb_kwargs, components_to_quantize=list(components)
        )
        return LoadQuantization(config, f"{backend} for {', '.join(components)}")
    if family == "transformers":
        from transformers import BitsAndBytesConfig

        return LoadQuantization(BitsAndBytesConfig(**bnb_kwargs), f"bitsandbytes {bits}-bit")
    raise ValueError(f"unknown model family {family!r}")
