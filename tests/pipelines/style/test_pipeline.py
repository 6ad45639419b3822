"""Style Transfer pipeline on the real ONNX networks and the real VGG19 (small sizes, 1 thread)."""

from __future__ import annotations

import io
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.metadata.png import read_png_parameters
from pipelines.style import fast as style_fast
from pipelines.style.images import load_image, rgb_to_ycc, to_float
from pipelines.style.models import register_style_models, thumbnail_paths
from pipelines.style.options import StyleMode, parse_blend
from pipelines.style.pipeline import FAST_ID, TASK, StylePipeline, StyleRequest
from studio.events import CancelToken, Finished, Notice, Started, Step, UserError

SAMPLE = Path(__file__).resolve().parents[3] / "assets" / "styles" / "sample.jpg"


@pytest.fixture(scope="module")
def fast_models() -> style_fast.FastStyleModels:
    return style_fast.load_fast_models(threads=1)


@pytest.fixture
def pipeline(ctx) -> StylePipeline:
    register_style_models(ctx.registry, ctx.settings.data_dir)  # idempotent next to create_context's
    return StylePipeline(ctx.registry, ctx.store)


def content_image(w: int = 160, h: int = 120) -> Image.Image:
    return Image.open(SAMPLE).convert("RGB").resize((w, h), Image.LANCZOS)


def style_image(w: int = 97, h: int = 61) -> Image.Image:
    """An odd-sized, non-square painterly pattern."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack(
        [np.sin(xx / 3) * 0.5 + 0.5, np.sin((xx + yy) / 5) * 0.5 + 0.5, np.cos(yy / 2) * 0.5 + 0.5], -1
    )
    return Image.fromarray((rgb * 255).astype(np.uint8))


def run(
    pipeline: StylePipeline, request: StyleRequest, cancel: CancelToken | None = None
) -> tuple[object, list]:
    events = list(pipeline.generate(request, cancel or CancelToken()))
    assert isinstance(events[0], (Started, Notice)) and isinstance(events[-1], Finished), events
    return events[-1].result, events


def mean_abs(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(to_float(a) - to_float(b.convert("RGB"))).mean())


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"mode": StyleMode.PRESET, "styles": {3: 1.0}},
        {"mode": StyleMode.PRESET, "styles": {3: 0.5, 19: 0.5}},
        {"mode": StyleMode.IMAGE},
        {"mode": StyleMode.FILTER, "filter_name": "stylization"},
        {"mode": StyleMode.FILTER, "filter_name": "pencil"},
        {"mode": StyleMode.FILTER, "filter_name": "cartoon"},
        {"mode": StyleMode.FILTER, "filter_name": "oil"},
        {"mode": StyleMode.GATYS, "iterations": 3, "gatys_size": 64, "style_weight": 1e4, "size": 150},
    ],
    ids=lambda kw: (
        f"{kw['mode'].value}-{kw.get('filter_name', '')}{'-'.join(map(str, kw.get('styles', {})))}"
    ),
)
def test_each_mode_right_size_and_differs(pipeline, request_kwargs) -> None:
    content = content_image(150, 110)  # not a multiple of 4 on purpose
    request = StyleRequest(content=content, style_image=style_image(), **request_kwargs)
    result, _ = run(pipeline, request)
    assert result.image.size == content.size
    assert mean_abs(content, result.image) > 0.03, "the result should look different from the content"
    # saved as PNG with its parameters, and recorded in History
    assert result.path.exists() and read_png_parameters(result.path).settings["Mode"] == request.mode.value
    record = pipeline.store.get(result.record_id)
    assert record is not None and record.task == TASK and record.params["mode"] == request.mode.value


def test_blend_differs_from_each_single_style(pipeline) -> None:
    content = content_image()
    a = run(pipeline, StyleRequest(content, styles={3: 1.0}))[0].image
    b = run(pipeline, StyleRequest(content, styles={19: 1.0}))[0].image
    ab = run(pipeline, StyleRequest(content, styles={3: 1.0, 19: 1.0}))[0].image
    assert mean_abs(a, ab) > 0.02 and mean_abs(b, ab) > 0.02


def test_strength_zero_returns_the_content(pipeline) -> None:
    content = content_image()
    for mode in (StyleMode.PRESET, StyleMode.IMAGE, StyleMode.FILTER):
        result, _ = run(pipeline, StyleRequest(content, mode=mode, style_image=style_image(), strength=0.0))
        assert np.array_equal(np.asarray(result.image), np.asarray(content)), mode


def test_strength_half_is_between(pipeline) -> None:
    content = content_image()
    full = run(pipeline, StyleRequest(content, styles={7: 1.0}))[0].image
    half = run(pipeline, StyleRequest(content, styles={7: 1.0}, strength=0.5))[0].image
    assert abs(mean_abs(content, half) - 0.5 * mean_abs(content, full)) < 0.01


def test_preserve_colours_keeps_chroma(pipeline) -> None:
    content = content_image()
    plain = run(pipeline, StyleRequest(content, styles={3: 1.0}))[0].image
    kept = run(pipeline, StyleRequest(content, styles={3: 1.0}, preserve_colors=True))[0].image
    chroma = lambda im: rgb_to_ycc(to_float(im))[..., 1:]  # noqa: E731
    error_kept = float(np.abs(chroma(kept) - chroma(content)).mean())
    error_plain = float(np.abs(chroma(plain) - chroma(content)).mean())
    assert error_kept < 0.01, error_kept  # only clipping and 8-bit rounding remain
    assert error_plain > 5 * error_kept  # and the style alone would have changed the colours
    y = lambda im: rgb_to_ycc(to_float(im))[..., 0]  # noqa: E731
    assert float(np.abs(y(kept) - y(plain)).mean()) < 0.02  # the luminance is the stylized one


def test_tiled_matches_untiled(fast_models) -> None:
    content = to_float(content_image(384, 320))
    weights = style_fast.style_weight_vector({19: 1.0})
    untiled = style_fast.run_multistyle(fast_models, content, weights)
    plan = style_fast.TilePlan(tile=256, overlap=128, stats_side=0)  # stats on the whole image
    tiled = style_fast.run_multistyle_tiled(fast_models, content, weights, plan)
    assert style_fast.tile_count(320, 384, plan) >= 4
    error = np.abs(tiled - untiled)
    assert error.mean() < 0.003 and error.max() < 0.08, (error.mean(), error.max())
    # without shared statistics each tile would drift in tone: the fix is what makes the match
    naive = np.concatenate(
        [
            style_fast.run_multistyle(fast_models, content[:, :192], weights),
            style_fast.run_multistyle(fast_models, content[:, 192:], weights),
        ],
        axis=1,
    )
    assert np.abs(naive - untiled).mean() > 10 * error.mean()


def test_fused_norm_graph_matches_the_original() -> None:
    import onnxruntime as ort

    from pipelines.style.onnx_graph import fuse_instance_norms

    graph = (style_fast.models_dir() / "multistyle26.onnx").read_bytes()
    fused, count = fuse_instance_norms(graph)
    assert count == 18
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    x = {
        "image": to_float(content_image(96, 64)).transpose(2, 0, 1)[None].copy(),
        "style_weights": style_fast.style_weight_vector({2: 0.3, 11: 0.7}),
    }
    original = ort.InferenceSession(graph, options).run(None, x)[0]
    ours = ort.InferenceSession(fused, options).run(None, x)[0]
    assert np.abs(original - ours).max() < 1e-4


def test_forced_tiling_through_the_pipeline(pipeline) -> None:
    content = content_image(300, 200)
    result, events = run(pipeline, StyleRequest(content, styles={5: 1.0}, tile=128))
    assert result.tiles > 1 and result.image.size == content.size
    assert sum(isinstance(e, Step) for e in events) >= 1
    untiled = run(pipeline, StyleRequest(content, styles={5: 1.0}))[0].image
    # statistics come from the whole image at the budget size (here the full size): close match
    assert mean_abs(result.image, untiled) < 0.01


def test_any_style_with_detail_is_tiled_and_seamless(pipeline) -> None:
    content = content_image(700, 500)
    style = Image.open(SAMPLE.parent / "style_09.jpg")
    soft, _ = run(pipeline, StyleRequest(content, mode=StyleMode.IMAGE, style_image=style))
    sharp, events = run(pipeline, StyleRequest(content, mode=StyleMode.IMAGE, style_image=style, detail=700))
    assert sharp.tiles > 1 and sharp.image.size == content.size and soft.tiles == 1
    assert sum(isinstance(e, Step) for e in events) >= 2
    # more detail: more high-frequency energy than the 384-px pass upscaled
    energy = lambda im: float(np.abs(np.diff(to_float(im), axis=1)).mean())  # noqa: E731
    assert energy(sharp.image) > 1.2 * energy(soft.image)
    # no seam: the tone step across each tile junction is like the step anywhere else
    arr = to_float(sharp.image)
    cumulative = np.cumsum(np.pad(arr, ((0, 0), (1, 0), (0, 0))), axis=1)
    band = (cumulative[:, 16:] - cumulative[:, :-16]) / 16
    steps = np.abs(band[:, :-16] - band[:, 16:]).mean(axis=(0, 2))
    junctions = [x + 64 for x in style_fast.tile_origins(700, style_fast.ARBITRARY_SIZE, 128)[1:]]
    assert max(steps[c - 16] for c in junctions) < 1.6 * float(np.median(steps))


def test_gatys_loss_decreases_and_previews(pipeline) -> None:
    request = StyleRequest(
        content_image(),
        mode=StyleMode.GATYS,
        style_image=style_image(),
        iterations=6,
        gatys_size=64,
        preview_every=2,
        style_weight=1e4,
    )
    result, events = run(pipeline, request)
    assert result.image.size == (64, 48)  # at the working size unless an output size is asked for
    assert any(isinstance(e, Notice) and "working size" in e.message for e in events)
    losses = result.losses
    assert len(losses) == 6 and losses[-1] < 0.7 * losses[0], losses
    steps = [e for e in events if isinstance(e, Step)]
    assert any(s.preview is not None for s in steps)
    assert all(s.preview is None or s.preview.size[0] == 64 for s in steps)


def test_gatys_cancel_stops_within_an_iteration(pipeline) -> None:
    cancel = CancelToken()
    request = StyleRequest(
        content_image(),
        mode=StyleMode.GATYS,
        style_image=style_image(),
        iterations=200,
        gatys_size=48,
        preview_every=0,
    )
    seen = 0
    for event in pipeline.generate(request, cancel):
        if isinstance(event, Step):
            seen = event.index
            if event.index >= 2:
                cancel.cancel()
        if isinstance(event, Finished):
            result = event.result
    assert result.cancelled and result.path is None and len(result.losses) <= seen + 1 < 200


def test_gatys_size_over_the_plan_limit_is_refused(pipeline) -> None:
    limit = pipeline.limits.gatys_side
    request = StyleRequest(
        content_image(), mode=StyleMode.GATYS, style_image=style_image(), gatys_size=limit + 64
    )
    with pytest.raises(UserError, match=f"limited to {limit} px"):
        pipeline.generate(request, CancelToken())


# -- bad input -----------------------------------------------------------------------------------


def test_bad_files_are_user_errors(pipeline, tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    buf = io.BytesIO()
    content_image().save(buf, format="PNG")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    for path, message in ((empty, "zero-byte"), (text, "could not be read"), (corrupt, "could not be read")):
        with pytest.raises(UserError, match=message):
            list(pipeline.generate(StyleRequest(str(path)), CancelToken()))
    with pytest.raises(UserError, match="style image"):
        pipeline.generate(StyleRequest(content_image(), mode=StyleMode.IMAGE), CancelToken())


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height (a tiny IDAT follows; it is never decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_20000_square_png_is_refused_without_decoding(pipeline) -> None:
    with pytest.raises(UserError, match="20,000×20,000"):
        list(pipeline.generate(StyleRequest(_png_header_only(20000, 20000)), CancelToken()))


def test_decompression_bomb_sized_jpeg_is_decoded_small() -> None:
    """14000x13000 (182 MP) is past PIL's own bomb limit (2 x 89.5 MP): PIL would refuse to open it."""
    buf = io.BytesIO()
    Image.new("L", (14000, 13000), 90).save(buf, format="JPEG", quality=30)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(buf.getvalue()))
    loaded = load_image(buf.getvalue(), max_decode_pixels=4_000_000)  # the pipeline passes max_side²
    assert loaded.original_size == (14000, 13000) and loaded.notices
    assert loaded.rgb.size[0] * loaded.rgb.size[1] <= 4_000_000 and loaded.rgb.mode == "RGB"


def test_huge_jpeg_is_draft_decoded_with_a_notice() -> None:
    buf = io.BytesIO()
    content_image(1600, 1200).save(buf, format="JPEG")
    loaded = load_image(buf.getvalue(), max_decode_pixels=300_000)
    assert loaded.original_size == (1600, 1200)
    assert loaded.rgb.size[0] * loaded.rgb.size[1] <= 300_000 and loaded.notices


def test_png_above_the_target_is_reduced_not_refused() -> None:
    buf = io.BytesIO()
    content_image(900, 600).save(buf, format="PNG")
    loaded = load_image(buf.getvalue(), max_decode_pixels=100_000)
    assert loaded.rgb.size[0] * loaded.rgb.size[1] <= 100_000 and "reduced" in loaded.notices[0]


def test_content_larger_than_the_plan_is_downscaled_with_a_notice(pipeline, monkeypatch) -> None:
    from pipelines.style import pipeline as style_transfer

    small = style_transfer.StyleLimits(max_side=128, untiled_pixels=128 * 128, gatys_side=64)
    monkeypatch.setattr(style_transfer, "limits_for", lambda plan: small)
    result, events = run(pipeline, StyleRequest(content_image(300, 200), mode=StyleMode.FILTER))
    assert max(result.image.size) == 128
    assert any(isinstance(e, Notice) and "downscaled" in e.message for e in events)


def test_grayscale_and_rgba_content(pipeline) -> None:
    gray = content_image().convert("L")
    result, _ = run(pipeline, StyleRequest(gray, styles={2: 1.0}))
    assert result.image.mode == "RGB" and result.image.size == gray.size
    rgba = content_image().convert("RGBA")
    alpha = np.zeros((rgba.height, rgba.width), np.uint8)
    alpha[:, : rgba.width // 2] = 255
    rgba.putalpha(Image.fromarray(alpha))
    result, _ = run(pipeline, StyleRequest(rgba, styles={2: 1.0}))
    assert result.image.mode == "RGBA"
    assert np.array_equal(np.asarray(result.image)[..., 3], alpha)  # transparency survives


def test_odd_and_tiny_style_images(pipeline) -> None:
    for size in ((17, 301), (1001, 19)):
        result, _ = run(
            pipeline, StyleRequest(content_image(), mode=StyleMode.IMAGE, style_image=style_image(*size))
        )
        assert result.image.size == content_image().size
    with pytest.raises(UserError, match="at least"):
        list(
            pipeline.generate(
                StyleRequest(content_image(), mode=StyleMode.IMAGE, style_image=style_image(5, 5)),
                CancelToken(),
            )
        )


def test_parse_blend() -> None:
    assert parse_blend("3:0.5, 12:0.5") == {3: 0.5, 12: 0.5}
    assert parse_blend("7") == {7: 1.0}
    for bad in ("x", "40", "3:-1"):
        with pytest.raises(UserError):
            parse_blend(bad)


def test_thumbnails_exist_for_every_style(ctx) -> None:
    paths = thumbnail_paths(ctx.registry, ctx.settings.data_dir)
    assert len(paths) == 26 and all(Image.open(p).size[0] >= 64 for p in paths)


def test_models_load_lazily_through_the_registry(ctx) -> None:
    register_style_models(ctx.registry, ctx.settings.data_dir)
    assert FAST_ID not in ctx.registry.loaded_ids()
    assert isinstance(ctx.registry.load(FAST_ID, TASK).model, style_fast.FastStyleModels)


def test_concurrent_requests_share_sessions(pipeline) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            run(pipeline, StyleRequest(content_image(64, 64), styles={1: 1.0}))
        except BaseException as error:  # noqa: BLE001 - surfaced below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
