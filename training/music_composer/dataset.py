"""Build the composer's dataset from the corpus inside the music21 wheel, once, and cache it.

    OMP_NUM_THREADS=1 python -m training.music_composer.dataset      # ~3 min, then cached

Styles and sources (all offline, public-domain melodies):
- chorale: the 371 Bach chorales (`corpus.chorales.Iterator()`), four voices SATB;
- folk:    Essen folk songs (`essenFolksong/*.abc`), one melody;
- irish:   O'Neill's 1850 Irish tunes (`oneills1850/*.abc`), one melody.

Each piece is: key analysed by music21 (Krumhansl-Schmuckler), transposed to C major / A minor,
shifted so bar lines fall on a 4/4 grid after any pickup, turned into a symusic score with one
track per voice, and tokenized by the REMI tokenizer of `pipelines.music.tokens`. Parsing costs
40-175 ms per piece, so the folk and Irish sets are capped (`MAX_PER_STYLE`).

The split is fixed by `SEED`: per style, pieces are shuffled and 85% / 5% / 10% go to
train / val / test. The piece ids of each split are written next to the cache and to
assets/models/music-composer/split.json (committed), so evaluation and tests use the same pieces.
"""

from __future__ import annotations

import argparse
import json
import logging
import pickle
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pipelines.music.tokens import TPQ, Key, conditioning_tokens, make_tokenizer, voices_score

log = logging.getLogger("music_composer.dataset")

SEED = 1234
CACHE_DIR = Path("/root/.cache/creative-studio/music-train")
SPLIT_FILE = Path(__file__).resolve().parents[2] / "assets" / "models" / "music-composer" / "split.json"
MAX_PER_STYLE = {"chorale": 371, "folk": 700, "irish": 700}
ESSEN_FILES = ("altdeu10", "ballad10", "kinder0")  # three Essen collections (~900 songs)
FRACTIONS = (0.85, 0.05, 0.10)  # train / val / test


@dataclass
class Piece:
    id: str  # "bach/bwv269", "essenFolksong/altdeu10#12", "oneills1850/0001-0050#3"
    style: str  # chorale | folk | irish
    key: str  # original key, e.g. "G major"
    mode: str  # major | minor
    voices: list[list[tuple[int, int, int]]]  # normalized to C/Am: (start, duration, pitch) in 16ths
    ids: list[int] = field(default_factory=list)  # REMI token ids, conditioning prefix first
    split: str = "train"


def score_to_voices(score, max_voices: int = 4) -> list[list[tuple[int, int, int]]]:  # noqa: ANN001
    """music21 Score -> notes per voice on the 16th grid, bars aligned after a pickup."""
    parts = list(score.parts)[:max_voices] or [score]
    pickup = 0.0
    first_measure = (
        parts[0].getElementsByClass("Measure").first() if hasattr(parts[0], "getElementsByClass") else None
    )
    if first_measure is not None and first_measure.paddingLeft:
        pickup = float(first_measure.paddingLeft)  # quarter lengths missing from the first bar
    voices = []
    for part in parts:
        notes = []
        for element in part.stripTies().flatten().notes:
            duration = float(element.quarterLength)
            if duration <= 0:
                continue  # grace notes
            start = int(round((float(element.offset) + pickup) * TPQ))
            length = max(1, int(round(duration * TPQ)))
            if element.isChord:
                pitches = [max(p.midi for p in element.pitches)]  # a melody part keeps its top note
            else:
                pitches = [element.pitch.midi]
            notes.extend((start, length, p) for p in pitches)
        if notes:
            voices.append(notes)
    return voices


def normalize(voices, key) -> list[list[tuple[int, int, int]]]:  # noqa: ANN001
    """Transpose notes from `key` to C major / A minor."""
    shift = -key.shift_from_normal
    return [[(s, d, p + shift) for s, d, p in voice] for voice in voices]


def _music21_key(score) -> Key:  # noqa: ANN001
    k = score.analyze("key")
    return Key(k.tonic.pitchClass, "minor" if k.mode == "minor" else "major")


def iter_scores(style: str, limit: int):  # noqa: ANN201
    """(piece id, music21 score) for up to `limit` pieces of one style, in corpus order."""
    from music21 import corpus

    if style == "chorale":
        for name in list(corpus.chorales.Iterator(returnType="filename"))[:limit]:
            yield name, corpus.parse(name)
        return
    folder = "essenFolksong" if style == "folk" else "oneills1850"
    paths = sorted(p for p in corpus.getPaths() if f"/{folder}/" in str(p))
    if style == "folk":
        paths = [p for p in paths if Path(p).stem in ESSEN_FILES]
    count = 0
    for path in paths:
        opus = corpus.parse(str(path))
        scores = list(opus.scores) if hasattr(opus, "scores") else [opus]
        for i, score in enumerate(scores):
            yield f"{folder}/{Path(path).stem}#{i}", score
            count += 1
            if count >= limit:
                return


def build(cache_dir: Path = CACHE_DIR) -> list[Piece]:
    """Parse, normalize, tokenize and split; cached in cache_dir/dataset.pkl."""
    cache = cache_dir / "dataset.pkl"
    if cache.exists():
        with cache.open("rb") as f:
            return [Piece(**row) for row in pickle.load(f)]
    tokenizer = make_tokenizer()
    pieces: list[Piece] = []
    for style, limit in MAX_PER_STYLE.items():
        t0, found = time.perf_counter(), []
        for piece_id, score in iter_scores(style, limit):
            try:
                key = _music21_key(score)
                voices = normalize(score_to_voices(score), key)
            except Exception as error:  # noqa: BLE001 - a few corpus files are odd; skip them
                log.warning("skip %s: %s", piece_id, error)
                continue
            if not voices or sum(len(v) for v in voices) < 8:
                continue
            prefix = [tokenizer.vocab[t] for t in conditioning_tokens(style, key.mode)]
            ids = tokenizer.encode(voices_score(voices)).ids
            found.append(Piece(piece_id, style, key.name, key.mode, voices, prefix + list(ids)))
        # 2. fixed split per style
        random.Random(f"{SEED}-{style}").shuffle(found)
        n_train = int(len(found) * FRACTIONS[0])
        n_val = int(len(found) * FRACTIONS[1])
        for i, piece in enumerate(found):
            piece.split = "train" if i < n_train else "val" if i < n_train + n_val else "test"
        pieces.extend(found)
        log.info("%s: %d pieces in %.0f s", style, len(found), time.perf_counter() - t0)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with cache.open("wb") as f:
        pickle.dump([asdict(p) for p in pieces], f)  # plain dicts: loadable from any module
    write_split(pieces)
    return pieces


def write_split(pieces: list[Piece], path: Path = SPLIT_FILE) -> None:
    split: dict[str, dict[str, list[str]]] = {}
    for piece in pieces:
        split.setdefault(piece.split, {}).setdefault(piece.style, []).append(piece.id)
    meta = {"seed": SEED, "fractions": FRACTIONS, "max_per_style": MAX_PER_STYLE, "keys": {}}
    meta["keys"] = {p.id: p.key for p in pieces if p.split == "test"}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**meta, "split": split}, indent=1))


def stats(pieces: list[Piece]) -> dict:
    out: dict = {}
    for style in MAX_PER_STYLE:
        lens = [len(p.ids) for p in pieces if p.style == style]
        out[style] = {
            "pieces": len(lens),
            "tokens": int(np.sum(lens)) if lens else 0,
            "mean_len": float(np.mean(lens)) if lens else 0.0,
            "minor": sum(p.mode == "minor" for p in pieces if p.style == style),
        }
    return out


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    args = parser.parse_args()
    data = build(args.cache_dir)
    log.info("stats: %s", json.dumps(stats(data)))
