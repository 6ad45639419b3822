"""High-quality style transfer: Gatys, Ecker & Bethge 2016, optimising the pixels on VGG19 features.

    loss = content_weight * L_content(conv4_2) + style_weight * sum_l w_l L_style(Gram_l) + tv_weight * TV

The image starts as the content (faster, steadier than noise) and is optimised with Adam: one
forward/backward per iteration and a steady decrease. (L-BFGS, the paper's choice, was measured
here: with box clamping or a strong-Wolfe line search its loss spiked 100x or diverged at small
sizes, so it is not offered.) Each iteration calls `on_step`,
which the pipeline turns into a Step event (with a preview every N iterations) and which raises
Cancelled when the token is set, so Stop takes effect within one iteration.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pipelines.style.vgg19 import deprocess, extract, preprocess

log = logging.getLogger(__name__)

CONTENT_LAYER = "block4_relu2"  # conv4_2, as in the paper
STYLE_LAYERS = ("block1_relu1", "block2_relu1", "block3_relu1", "block4_relu1", "block5_relu1")


@dataclass(frozen=True)
class GatysConfig:
    iterations: int = 100  # optimiser steps
    content_weight: float = 1.0  # alpha: keep the content's structure
    style_weight: float = 500.0  # beta: match the style's Gram matrices (Grams normalised by C*H*W)
    tv_weight: float = 1e-3  # total variation: smooths high-frequency noise
    learning_rate: float = 8.0  # Adam step, in pixel levels (of 255) per iteration
    init: str = "content"  # "content" | "noise"
    seed: int = 0  # noise init only


@dataclass(frozen=True)
class GatysStep:
    iteration: int  # 1-based
    loss: float
    content_loss: float
    style_loss: float
    seconds: float  # wall time of this iteration


def gram(features: torch.Tensor) -> torch.Tensor:
    """N x C x H x W -> N x C x C, normalised by C*H*W so layers and sizes are comparable."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def to_tensor(rgb: np.ndarray, device: str = "cpu") -> torch.Tensor:
    """HxWx3 float 0..1 -> 1x3xHxW."""
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].to(device)


def to_array(x: torch.Tensor) -> np.ndarray:
    """Network-space 1x3xHxW -> HxWx3 RGB float 0..1 (clamped)."""
    return deprocess(x.detach()).clamp(0, 1)[0].permute(1, 2, 0).cpu().numpy()


def stylize(
    vgg: nn.Sequential,
    content: np.ndarray,
    style: np.ndarray,
    config: GatysConfig,
    on_step: Callable[[GatysStep, Callable[[], np.ndarray]], None],
    device: str = "cpu",
) -> np.ndarray:
    """Optimise an image; `on_step(step, current_image)` is called after every iteration."""
    # 1. targets: content features and style Gram matrices, computed once
    wanted = {CONTENT_LAYER, *STYLE_LAYERS}
    with torch.no_grad():
        content_x = preprocess(to_tensor(content, device))
        target_content = extract(vgg, content_x, {CONTENT_LAYER})[CONTENT_LAYER]
        style_feats = extract(vgg, preprocess(to_tensor(style, device)), set(STYLE_LAYERS))
        target_grams = {name: gram(style_feats[name]) for name in STYLE_LAYERS}
        del style_feats
    # 2. the image being optimised lives in network space (BGR - mean), like the paper's code
    if config.init == "noise":
        generator = torch.Generator(device="cpu").manual_seed(config.seed)
        start = preprocess(torch.rand(content_x.shape, generator=generator).to(device))
    else:
        start = content_x.clone()
    image = start.requires_grad_(True)
    optimizer = torch.optim.Adam([image], lr=config.learning_rate)

    parts: dict[str, float] = {}
    low = preprocess(torch.zeros(1, 3, 1, 1, device=device))  # black and white in network space
    high = preprocess(torch.ones(1, 3, 1, 1, device=device))

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        feats = extract(vgg, image, wanted)
        # 3. content: squared error of conv4_2 activations
        content_loss = nn.functional.mse_loss(feats[CONTENT_LAYER], target_content)
        # 4. style: squared error of Gram matrices, equal weight per layer
        style_loss = sum(
            nn.functional.mse_loss(gram(feats[name]), target_grams[name]) for name in STYLE_LAYERS
        ) / len(STYLE_LAYERS)
        loss = (
            config.content_weight * content_loss
            + config.style_weight * style_loss
            + config.tv_weight * total_variation(image)
        )
        loss.backward()
        parts.update(loss=loss.item(), content=content_loss.item(), style=float(style_loss.item()))
        return loss

    for iteration in range(1, config.iterations + 1):
        started = time.perf_counter()
        optimizer.step(closure)
        with torch.no_grad():  # keep pixels displayable
            image.data = torch.maximum(torch.minimum(image.data, high), low)
        step = GatysStep(
            iteration, parts["loss"], parts["content"], parts["style"], time.perf_counter() - started
        )
        on_step(step, lambda: to_array(image))
    return to_array(image)
