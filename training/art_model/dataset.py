"""Procedural captioned scenes at 32x32: coloured shapes over simple skies and landscapes.

Every image comes with its ground truth (`Scene`), so prompt adherence is measurable. The
split is fixed: some colour/shape combinations never appear in training captions
(`HELDOUT_COMBOS`), and the paraphrase templates/synonyms (`paraphrase_caption`) are never
used in training. Everything is rendered here with PIL, so the data is license-clean.

Scenes are drawn at 4x and box-filtered down, which gives clean anti-aliased edges; each
shape gets a darker outline, the usual pixel-art sprite look, which keeps it readable on
any background.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SIZE = 32  # native resolution of the model
SUPERSAMPLE = 4  # render at 4x, then box-filter down

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (245, 130, 20),
    "yellow": (245, 220, 30),
    "green": (40, 170, 50),
    "blue": (30, 70, 220),
    "purple": (130, 40, 180),
    "pink": (245, 120, 180),
    "white": (245, 245, 245),
}
SHAPES = ("circle", "square", "triangle", "star")
LAYOUTS = ("center", "left", "right", "top", "bottom", "two", "three")  # first five: one object
BACKGROUNDS = ("sky", "night", "sunset", "field", "desert", "grey")

# colour/shape pairs that never occur in training captions or images: one per colour, two per shape
HELDOUT_COMBOS: frozenset[tuple[str, str]] = frozenset(
    {
        ("red", "star"),
        ("orange", "square"),
        ("yellow", "triangle"),
        ("green", "circle"),
        ("blue", "triangle"),
        ("purple", "circle"),
        ("pink", "square"),
        ("white", "star"),
    }
)
TRAIN_COMBOS = tuple(c for c in itertools.product(COLOURS, SHAPES) if c not in HELDOUT_COMBOS)

POSITION_PHRASES = {
    "center": " in the middle",
    "left": " on the left",
    "right": " on the right",
    "top": " at the top",
    "bottom": " at the bottom",
}
BACKGROUND_PHRASES = {  # (after the object, as a noun phrase)
    "sky": (" in a blue sky", "a blue sky"),
    "night": (" in the night sky", "a night sky"),
    "sunset": (" at sunset", "a sunset"),
    "field": (" over a grassy field", "a grassy field"),
    "desert": (" in the desert", "a desert"),
    "grey": (" on a grey background", "a grey background"),
}
# held-out wording: used only by the paraphrase evaluation, never in training captions
PARA_COLOURS = {
    "red": "crimson",
    "orange": "tangerine",
    "yellow": "golden",
    "green": "emerald",
    "blue": "cobalt blue",
    "purple": "violet",
    "pink": "rose pink",
    "white": "snow white",
}
PARA_SHAPES = {"circle": "disc", "square": "box", "triangle": "pyramid", "star": "starfish shape"}
PARA_COUNTS = {1: "a single", 2: "a pair of", 3: "3"}
PARA_POSITIONS = {
    "center": " in the centre",
    "left": " on the left-hand side",
    "right": " on the right-hand side",
    "top": " near the top",
    "bottom": " near the bottom",
}
PARA_BACKGROUNDS = {
    "sky": "under a clear daytime sky",
    "night": "on a dark starry night",
    "sunset": "in the evening dusk",
    "field": "above a green meadow",
    "desert": "among sand dunes",
    "grey": "on plain gray",
}


@dataclass(frozen=True)
class Scene:
    colour: str  # one of COLOURS (main attribute)
    shape: str  # one of SHAPES (second attribute)
    layout: str  # one of LAYOUTS: a position for one object, or "two"/"three" objects
    background: str  # one of BACKGROUNDS

    @property
    def count(self) -> int:
        return {"two": 2, "three": 3}.get(self.layout, 1)

    @property
    def position(self) -> str | None:
        return self.layout if self.count == 1 else None


def _object_phrase(scene: Scene, colour_word: str, shape_word: str, counts: dict[int, str]) -> str:
    plural = "es" if shape_word.endswith(("x", "sh")) else "s"
    if scene.count == 1:
        return f"{counts[1]} {colour_word} {shape_word}"
    return f"{counts[scene.count]} {colour_word} {shape_word}{plural}"


def train_captions(scene: Scene) -> list[str]:
    """All training captions of a scene: three templates, plus variants that leave out the
    background or the position (so short prompts like "a red star" also work)."""
    obj = _object_phrase(scene, scene.colour, scene.shape, {1: "a", 2: "two", 3: "three"})
    pos = POSITION_PHRASES.get(scene.layout, "")
    bg_after, bg_noun = BACKGROUND_PHRASES[scene.background]
    captions = [
        f"{obj}{pos}{bg_after}",
        f"{bg_noun} with {obj}{pos}",
        f"pixel art of {obj}{pos}{bg_after}",
        f"{obj}{pos}",
    ]
    if pos:
        captions.append(f"{obj}{bg_after}")
    return captions


def eval_caption(scene: Scene) -> str:
    """The canonical caption (first training template), used for held-out combinations."""
    return train_captions(scene)[0]


def paraphrase_caption(scene: Scene, rng: random.Random) -> str:
    """A caption in wording never used in training: synonyms for colour/shape/count/position,
    and different sentence templates."""
    colour = PARA_COLOURS[scene.colour] if rng.random() < 0.5 else scene.colour
    shape = PARA_SHAPES[scene.shape] if rng.random() < 0.5 else scene.shape
    obj = _object_phrase(scene, colour, shape, PARA_COUNTS)
    pos = PARA_POSITIONS.get(scene.layout, "")
    bg = PARA_BACKGROUNDS[scene.background]
    template = rng.randrange(3)
    if template == 0:
        return f"an illustration of {obj}{pos}, {bg}"
    if template == 1:
        return f"{bg}, {obj}{pos}"
    return f"a small picture: {obj}{pos} {bg}"


def all_scenes(combos: tuple[tuple[str, str], ...] | frozenset[tuple[str, str]]) -> list[Scene]:
    return [Scene(c, s, lay, bg) for (c, s) in sorted(combos) for lay in LAYOUTS for bg in BACKGROUNDS]


def all_train_captions() -> list[str]:
    """Every caption the training loop can draw (for the text-embedding cache), plus ""."""
    captions = {""}
    for scene in all_scenes(TRAIN_COMBOS):
        captions.update(train_captions(scene))
    return sorted(captions)


# ----------------------------------------------------------------------------------------------
# rendering


def _gradient(top: tuple[int, int, int], bottom: tuple[int, int, int], h: int, w: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]  # [h, 1, 1]
    return (np.array(top, np.float32) * (1 - t) + np.array(bottom, np.float32) * t).repeat(w, axis=1)


def _background(kind: str, rng: random.Random, n: int) -> np.ndarray:
    """[n, n, 3] float32 background in 0..255 with a little per-image variation."""
    jitter = np.array([rng.uniform(-12, 12) for _ in range(3)], np.float32)
    if kind == "sky":
        img = _gradient((70, 130, 225), (165, 205, 245), n, n)
    elif kind == "night":
        img = _gradient((8, 10, 35), (30, 30, 75), n, n)
        for _ in range(rng.randint(3, 7)):  # a few faint stars
            y, x = rng.randrange(n), rng.randrange(n)
            img[y : y + SUPERSAMPLE, x : x + SUPERSAMPLE] = (200, 200, 170)
    elif kind == "sunset":
        img = _gradient((90, 50, 130), (250, 150, 70), n, n)
    elif kind in ("field", "desert"):
        sky_top, sky_bottom, ground = (
            ((110, 170, 235), (175, 210, 245), (60, 140, 45))
            if kind == "field"
            else ((185, 210, 240), (215, 225, 240), (215, 180, 110))
        )
        horizon = int(n * rng.uniform(0.55, 0.68))
        img = _gradient(sky_top, sky_bottom, n, n)
        img[horizon:] = _gradient(ground, tuple(int(c * 0.8) for c in ground), n - horizon, n)
    elif kind == "grey":
        img = np.full((n, n, 3), 128.0, np.float32)
    else:
        raise ValueError(f"unknown background {kind!r}")
    return np.clip(img + jitter, 0, 255)


def _shape_polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]] | None:
    if shape == "square":
        h = r * 0.85
        return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if shape == "triangle":
        return [(cx, cy - r), (cx + r * 0.95, cy + r * 0.75), (cx - r * 0.95, cy + r * 0.75)]
    if shape == "star":
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else r * 0.45
            ang = -np.pi / 2 + k * np.pi / 5
            pts.append((cx + rad * np.cos(ang), cy + rad * np.sin(ang)))
        return pts
    return None  # circle: drawn as an ellipse


def _centres(layout: str, rng: random.Random) -> tuple[list[tuple[float, float]], float]:
    """Object centres (32-px units) and radius for a layout, with jitter."""
    j = lambda: rng.uniform(-1.5, 1.5)  # noqa: E731
    if layout in POSITION_PHRASES:
        cx, cy = {"center": (16, 16), "left": (9, 16), "right": (23, 16), "top": (16, 9), "bottom": (16, 23)}[
            layout
        ]
        return [(cx + j(), cy + j())], rng.uniform(6.0, 7.5)
    if layout == "two":
        pairs = [((9, 16), (23, 16)), ((16, 9), (16, 23)), ((10, 10), (22, 22)), ((22, 10), (10, 22))]
        return [(x + j(), y + j()) for x, y in rng.choice(pairs)], rng.uniform(4.5, 5.5)
    rows = [((7, 16), (16, 16), (25, 16)), ((16, 8), (9, 22), (23, 22)), ((16, 24), (9, 10), (23, 10))]
    return [(x + j() * 0.5, y + j() * 0.5) for x, y in rng.choice(rows)], rng.uniform(3.8, 4.6)


def render(scene: Scene, rng: random.Random) -> np.ndarray:
    """Render a scene as a [32, 32, 3] uint8 array."""
    n = SIZE * SUPERSAMPLE
    canvas = Image.fromarray(_background(scene.background, rng, n).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    base = np.array(COLOURS[scene.colour], np.float32)
    fill = tuple(int(v) for v in np.clip(base + [rng.uniform(-12, 12) for _ in range(3)], 0, 255))
    outline = tuple(int(v * 0.45) for v in fill)
    centres, radius = _centres(scene.layout, rng)
    for cx, cy in centres:
        cx, cy, r = cx * SUPERSAMPLE, cy * SUPERSAMPLE, radius * SUPERSAMPLE
        poly = _shape_polygon(scene.shape, cx, cy, r)
        if poly is None:
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill, outline=outline, width=SUPERSAMPLE)
        else:
            draw.polygon(poly, fill=fill, outline=outline, width=SUPERSAMPLE)
    return np.asarray(canvas.resize((SIZE, SIZE), Image.Resampling.BOX))


def random_scene(rng: random.Random, combos: tuple[tuple[str, str], ...] = TRAIN_COMBOS) -> Scene:
    colour, shape = rng.choice(combos)
    return Scene(colour, shape, rng.choice(LAYOUTS), rng.choice(BACKGROUNDS))


def labels(scene: Scene) -> tuple[int, int, int, int]:
    """Class indices (colour, shape, layout, background) for the adherence checker."""
    return (
        list(COLOURS).index(scene.colour),
        SHAPES.index(scene.shape),
        LAYOUTS.index(scene.layout),
        BACKGROUNDS.index(scene.background),
    )


def render_batch(
    rng: random.Random, n: int, combos: tuple[tuple[str, str], ...] = TRAIN_COMBOS
) -> tuple[np.ndarray, list[Scene]]:
    """n random scenes: ([n, 32, 32, 3] uint8, scenes)."""
    scenes = [random_scene(rng, combos) for _ in range(n)]
    return np.stack([render(s, rng) for s in scenes]), scenes


def vocabulary() -> dict:
    """What the v1 model knows, as pipelines.art.vocabulary reads it (written beside its weights)."""
    return {
        "model": "art-offline-shapes 1.0",
        "styles": ["pixel art"],
        "categories": {
            "colours": list(COLOURS),
            "shapes": list(SHAPES),
            "backgrounds": list(BACKGROUNDS),
            "layouts": ["in the middle", "on the left", "at the top", "two …", "three …"],
        },
        "examples": [
            "a red circle in the sky",
            "two yellow stars at night",
            "a blue square in a field",
            "three pink triangles at sunset",
        ],
    }
