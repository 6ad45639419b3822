"""Evaluate the exported composer and write RESULTS.md with figures.

    OMP_NUM_THREADS=1 python -m training.music_composer.evaluate

1. Held-out per-token NLL (nats) of the composer vs an interpolated Kneser-Ney n-gram fitted on
   the same training split (order chosen on the validation split), on the same test tokens.
2. In-scale rate of generated chorale notes in the requested key vs the chorale corpus's own
   rate (both count the raised 6th/7th of minor as in-scale, and both are also given strictly).
3. Key estimate (CQT chroma + Krumhansl-Kessler) on rendered held-out chorales.
4. Realtime factor of compose + render for 30 s of music.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from pathlib import Path

import numpy as np
import torch

from pipelines.music.audio import chroma_key, plot_pianoroll
from pipelines.music.composer import ASSET_DIR, ComposerBundle, load_composer
from pipelines.music.limits import STYLE_DEFAULTS
from pipelines.music.render import render
from pipelines.music.scores import compose_voices, finish_score
from pipelines.music.tokens import KEYS, MAJOR_SCALE, MINOR_SCALE, Key, voices_score
from training.music_composer import dataset
from training.music_composer.ngram import choose_order
from training.music_composer.train import PREFIX_LEN, Windows, evaluate

log = logging.getLogger("music_composer.evaluate")

HERE = Path(__file__).resolve().parent
FIGURES = HERE / "figures"
NATURAL_MINOR = (0, 2, 3, 5, 7, 8, 10)
STRIDE = 128  # strided evaluation: each scored token sees >= block_size - 128 - a bar of context


@torch.inference_mode()
def strided_nll(model, seqs: list[list[int]], stride: int, bar_id: int) -> tuple[float, int]:  # noqa: ANN001
    """Summed NLL and count of every token after the prefix, each scored once with long context.

    A window is the prefix + up to block_size - 3 body tokens starting at a bar line; consecutive
    windows advance by about `stride` (to the next bar line), and only the tokens not scored by an earlier window count (the strided evaluation
    of the Hugging Face perplexity guide), so most tokens see block_size - stride tokens or more.
    """
    block = model.config.block_size
    room = block - PREFIX_LEN
    total, count = 0.0, 0
    for seq in seqs:
        seq_t = torch.tensor(seq)
        scored_to = PREFIX_LEN  # every target index below this is already scored
        start = PREFIX_LEN
        while scored_to < len(seq):
            body = seq_t[start : start + room]
            x = torch.cat([seq_t[:PREFIX_LEN], body])
            logits = model(x[None, :-1])[0]  # predicts x[1:]
            targets = x[1:]
            # target index in the piece of each prediction: prefix targets map to 1..2, body to start..
            piece_index = torch.cat([torch.arange(1, PREFIX_LEN), torch.arange(start, start + len(body))])
            keep = piece_index >= scored_to
            nll = torch.nn.functional.cross_entropy(logits[keep], targets[keep], reduction="sum")
            total += float(nll)
            count += int(keep.sum())
            scored_to = start + len(body)
            # the next window starts at a bar line, as every training window does
            bars = [i for i in range(start + stride, scored_to) if seq[i] == bar_id]
            start = bars[0] if bars else start + stride
    return total, count


def heldout_nll(bundle: ComposerBundle, pieces: list[dataset.Piece], stride: int = 0) -> dict[str, float]:
    """Per-token NLL of the composer on the test split, overall and per style.

    stride 0: consecutive non-overlapping windows (what training logs as validation NLL);
    stride > 0: strided windows, so tokens late in a long piece keep their long context.
    """
    vocab = bundle.vocab
    out = {}
    for style in (None, *STYLE_DEFAULTS):
        chosen = [p for p in pieces if p.split == "test" and (style is None or p.style == style)]
        if stride:
            total, count = strided_nll(
                bundle.model, [[*p.ids, vocab["EOS_None"]] for p in chosen], stride, vocab["Bar_None"]
            )
            out[style or "all"] = total / count
        else:
            windows = Windows(
                chosen,
                bundle.model.config.block_size,
                vocab["PAD_None"],
                vocab["EOS_None"],
                vocab["Bar_None"],
            )
            out[style or "all"] = evaluate(bundle.model, windows)
    return out


def ngram_nll(
    pieces: list[dataset.Piece], vocab: dict[str, int]
) -> tuple[dict[str, float], int, dict[int, float]]:
    eos, pad = vocab["EOS_None"], vocab["PAD_None"]

    def seqs(split: str, style: str | None = None) -> list[list[int]]:
        return [[*p.ids, eos] for p in pieces if p.split == split and (style is None or p.style == style)]

    model, val_scores = choose_order(seqs("train"), seqs("val"), len(vocab), pad, skip=PREFIX_LEN)
    out = {}
    for style in (None, *STYLE_DEFAULTS):
        total, count = model.nll(seqs("test", style), skip=PREFIX_LEN)
        out[style or "all"] = total / count
    return out, model.n, val_scores


def in_scale(notes: list[int], key: Key, strict: bool = False) -> tuple[int, int]:
    steps = MAJOR_SCALE if key.mode == "major" else (NATURAL_MINOR if strict else MINOR_SCALE)
    scale = {(key.tonic + s) % 12 for s in steps}
    return sum(p % 12 in scale for p in notes), len(notes)


def corpus_in_scale(pieces: list[dataset.Piece]) -> dict[str, float]:
    """Chorales are stored in C major / A minor: count their notes against those scales."""
    hit = hit_strict = total = 0
    for piece in pieces:
        if piece.style != "chorale":
            continue
        key = Key(0, "major") if piece.mode == "major" else Key(9, "minor")
        notes = [p for voice in piece.voices for _, _, p in voice]
        h, n = in_scale(notes, key)
        hs, _ = in_scale(notes, key, strict=True)
        hit, hit_strict, total = hit + h, hit_strict + hs, total + n
    return {"rate": hit / total, "strict": hit_strict / total, "notes": total}


def generated_in_scale(bundle: ComposerBundle, n: int = 24, bars: int = 8, seed: int = 0) -> dict[str, float]:
    rng = random.Random(seed)
    hit = hit_strict = total = 0
    per_piece = []
    for i in range(n):
        key = Key.parse(rng.choice(KEYS))
        voices = compose_voices(bundle, "chorale", key, bars, 0.9, seed + i)
        notes = [p for voice in voices for _, _, p in voice]
        h, m = in_scale(notes, key)
        hs, _ = in_scale(notes, key, strict=True)
        hit, hit_strict, total = hit + h, hit_strict + hs, total + m
        per_piece.append(h / max(m, 1))
    return {
        "rate": hit / total,
        "strict": hit_strict / total,
        "notes": total,
        "pieces": n,
        "worst_piece": min(per_piece),
    }


def heldout_chorale_keys(limit: int = 10) -> list[tuple[str, str]]:
    """(piece id, music21 key) of the first `limit` held-out chorales of the committed split."""
    split = json.loads(dataset.SPLIT_FILE.read_text())
    ids = split["split"]["test"]["chorale"][:limit]
    return [(i, split["keys"][i]) for i in ids]


def render_chorale(piece_id: str, tempo: float = 90.0) -> tuple[np.ndarray, int]:
    """A whole corpus chorale, in its own key, rendered on a church organ."""
    import symusic
    from music21 import corpus

    score = voices_score(dataset.score_to_voices(corpus.parse(piece_id)))
    for track in score.tracks:
        track.program = 19
    score.tempos.append(symusic.Tempo(0, qpm=tempo))
    audio = render(score.resample(480), sample_rate=22050)
    return audio.mono, audio.sample_rate


def key_accuracy(limit: int = 10) -> dict:
    rows = []
    for piece_id, truth in heldout_chorale_keys(limit):
        samples, rate = render_chorale(piece_id)
        estimate, _ = chroma_key(samples, rate)
        rows.append(
            {"piece": piece_id, "truth": truth, "estimate": estimate.name, "ok": estimate.name == truth}
        )
    return {"correct": sum(r["ok"] for r in rows), "total": len(rows), "rows": rows}


def realtime_factor(
    bundle: ComposerBundle, seconds: float = 30.0, style: str = "chorale", repeats: int = 3, seed: int = 0
) -> dict:
    """Seconds of audio per second of compute, compose + render of `seconds` of music.

    The same seed every repeat (the same piece), best of `repeats`: noise only adds time.
    """
    tempo = STYLE_DEFAULTS[style]["tempo"]
    bars = int(np.ceil(seconds / (4 * 60 / tempo)))
    best = float("inf")
    timing = {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        voices = compose_voices(bundle, style, Key(0, "major"), bars, 0.9, seed)
        t1 = time.perf_counter()
        score = finish_score(voices, Key(0, "major"), tempo, STYLE_DEFAULTS[style]["instruments"], bars, 80)
        audio = render(score)
        t2 = time.perf_counter()
        if t2 - t0 < best:
            best = t2 - t0
            timing = {
                "compose_s": t1 - t0,
                "render_s": t2 - t1,
                "audio_s": audio.duration_s,
                "notes": score.note_num(),
            }
    return {
        **timing,
        "style": style,
        "bars": bars,
        "total_s": best,
        "realtime_factor": timing["audio_s"] / best,
    }


# -- figures -------------------------------------------------------------------------------------


def figure_training(history: list[dict], ngram: float, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.4), dpi=110, layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    steps = [h["step"] for h in history]
    ax.plot(steps, [h["train"] for h in history], label="train (mean of the last interval)")
    ax.plot(steps, [h["val"] for h in history], marker="o", label="validation")
    ax.axhline(ngram, color="grey", linestyle="--", label=f"n-gram on test ({ngram:.3f})")
    ax.set(
        xlabel="step", ylabel="NLL (nats / token)", title="Composer training", ylim=(0, max(3.0, ngram + 0.5))
    )
    ax.legend()
    fig.savefig(path)


def figure_bars(
    title: str, labels: list[str], series: dict[str, list[float]], ylabel: str, path: Path
) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.2), dpi=110, layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(labels))
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series.items()):
        bars = ax.bar(x + i * width - 0.4 + width / 2, values, width, label=name)
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks(x, labels)
    ax.set(ylabel=ylabel, title=title)
    ax.legend()
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", type=Path, default=ASSET_DIR)
    parser.add_argument("--ckpt-dir", type=Path, default=dataset.CACHE_DIR)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    FIGURES.mkdir(exist_ok=True)
    bundle = load_composer(args.model_dir)
    pieces = dataset.build(args.ckpt_dir)
    results: dict = {"model": bundle.meta, "data": dataset.stats(pieces)}
    # 1. NLL
    t0 = time.perf_counter()
    results["nll_model"] = heldout_nll(bundle, pieces, stride=STRIDE)
    results["nll_model_windows"] = heldout_nll(bundle, pieces)
    results["nll_ngram"], results["ngram_order"], results["ngram_val_by_order"] = ngram_nll(
        pieces, bundle.vocab
    )
    log.info(
        "NLL model %s  n-gram (n=%d) %s  (%.0f s)",
        results["nll_model"],
        results["ngram_order"],
        results["nll_ngram"],
        time.perf_counter() - t0,
    )
    # 2. in-scale
    results["in_scale_corpus"] = corpus_in_scale(pieces)
    results["in_scale_generated"] = generated_in_scale(bundle)
    log.info("in-scale corpus %s generated %s", results["in_scale_corpus"], results["in_scale_generated"])
    # 3. key estimate, 4. speed
    results["key_accuracy"] = key_accuracy(10)
    log.info("key accuracy %d/%d", results["key_accuracy"]["correct"], results["key_accuracy"]["total"])
    results["realtime"] = {s: realtime_factor(bundle, style=s) for s in STYLE_DEFAULTS}
    log.info("realtime %s", results["realtime"])
    (HERE / "results.json").write_text(json.dumps(results, indent=1))
    # 5. figures
    history_path = args.ckpt_dir / "history.json"
    if history_path.exists():
        history = json.loads(history_path.read_text())
    else:
        import torch as _torch

        history = _torch.load(args.ckpt_dir / "ckpt.pt", weights_only=False)["history"]
    figure_training(history, results["nll_ngram"]["all"], FIGURES / "training.png")
    labels = ["all", *STYLE_DEFAULTS]
    figure_bars(
        "Held-out NLL per token (lower is better)",
        labels,
        {
            "composer": [results["nll_model"][k] for k in labels],
            f"{results['ngram_order']}-gram KN": [results["nll_ngram"][k] for k in labels],
        },
        "nats / token",
        FIGURES / "nll.png",
    )
    c, g = results["in_scale_corpus"], results["in_scale_generated"]
    figure_bars(
        "Chorale notes in the key's scale",
        ["with raised 6/7 in minor", "strict diatonic"],
        {"Bach corpus": [c["rate"], c["strict"]], "generated": [g["rate"], g["strict"]]},
        "fraction of notes",
        FIGURES / "in_scale.png",
    )
    key = Key(2, "minor")
    voices = compose_voices(bundle, "chorale", key, 8, 0.9, 7)
    score = finish_score(voices, key, 80, (19, 19, 19, 19), 8, 80)
    plot_pianoroll(score, FIGURES / "sample_chorale.png", "Generated chorale, D minor, seed 7")
    score.dump_midi(str(FIGURES / "sample_chorale.mid"))
    write_results_md(results)


def write_results_md(r: dict) -> None:
    m, n = r["nll_model"], r["nll_ngram"]
    c, g = r["in_scale_corpus"], r["in_scale_generated"]
    k = r["key_accuracy"]
    meta = r["model"]
    cfg = meta["model"]
    d = r["data"]
    rows = "\n".join(
        f"| {s} | {m[s]:.3f} | {n[s]:.3f} | {np.exp(m[s]):.2f} | {np.exp(n[s]):.2f} |" for s in m
    )
    key_rows = "\n".join(
        f"| {x['piece']} | {x['truth']} | {x['estimate']} | {'✓' if x['ok'] else '✗'} |" for x in k["rows"]
    )
    rt_rows = "\n".join(
        f"| {s} | {v['bars']} | {v['audio_s']:.1f} | {v['compose_s']:.2f} | {v['render_s']:.2f} | {v['realtime_factor']:.0f}× |"
        for s, v in r["realtime"].items()
    )
    text = f"""# Offline composer: results

Generated by `python -m training.music_composer.evaluate` (numbers below come from `results.json`).

## Model and training

- nanoGPT-style decoder (`pipelines/music/network.py`): {cfg["n_layer"]} layers, {cfg["n_head"]} heads,
  width {cfg["n_embd"]}, context {cfg["block_size"]} tokens, vocabulary {cfg["vocab_size"]} (miditok REMI + style/mode tokens).
- Data: the music21 corpus: {d["chorale"]["pieces"]} Bach chorales (SATB), {d["folk"]["pieces"]} Essen folk songs,
  {d["irish"]["pieces"]} O'Neill Irish tunes ({sum(v["tokens"] for v in d.values()):,} tokens), each transposed to C major / A minor; split 85/5/10 per style with seed 1234 (`assets/models/music-composer/split.json`).
- Trained to step {meta["step"]} ({meta["cpu_min"]:.1f} CPU-minutes on one thread, batch {meta["train"]["batch_size"]},
  AdamW {meta["train"]["lr"]} cosine to {meta["train"]["min_lr"]}); best validation NLL {meta["val_nll"]:.3f}.

![training](figures/training.png)

## Held-out NLL: composer vs n-gram

Interpolated Kneser-Ney {r["ngram_order"]}-gram (order chosen on validation: {", ".join(f"n={o}: {v:.3f}" for o, v in r["ngram_val_by_order"].items())}),
fitted on the same training tokens and scored on the same test tokens (the prefix tokens are given, not scored).
The order search stops at 16; the last orders gained under 0.005 nats each. Long n-grams keep paying
because the corpus repeats itself across the split (Bach harmonized many chorale melodies more than
once; the Essen and O'Neill collections hold variants of the same tunes), which makes this a strong baseline.
The composer is scored with bar-aligned strided windows (stride {STRIDE} tokens, context {cfg["block_size"]});
with consecutive non-overlapping windows (as the training log's validation NLL) it scores
{", ".join(f"{k} {v:.3f}" for k, v in r["nll_model_windows"].items())}.

| test set | composer NLL | n-gram NLL | composer perplexity | n-gram perplexity |
|---|---|---|---|---|
{rows}

![nll](figures/nll.png)

## In-scale rate (chorale style)

Share of notes whose pitch class is in the key's scale (minor counts the raised 6th and 7th, which
Bach uses constantly; "strict" is the natural-minor/major diatonic set).

| | in scale | strict diatonic | notes |
|---|---|---|---|
| Bach chorale corpus (all 371, own keys) | {c["rate"]:.3f} | {c["strict"]:.3f} | {c["notes"]} |
| generated ({g["pieces"]} chorales × 8 bars, random keys) | {g["rate"]:.3f} | {g["strict"]:.3f} | {g["notes"]} |

Lowest single generated piece: {g["worst_piece"]:.3f}.

![in-scale](figures/in_scale.png)

## Key estimate on rendered held-out chorales

Whole chorales rendered with tinysoundfont (church organ); the time-averaged CQT magnitude is
unmixed into notes by NNLS against harmonic templates, folded to pitch classes and correlated
with the 24 rotated Krumhansl-Kessler profiles; truth is music21's analysis of the score.
**{k["correct"]} / {k["total"]} correct.**

| chorale | key (score) | estimate | |
|---|---|---|---|
{key_rows}

## Speed: compose + render of 30 s (best of 3, one thread)

| style | bars | audio (s) | compose (s) | render (s) | realtime factor |
|---|---|---|---|---|---|
{rt_rows}

The composer's decoding costs ~1 ms of CPU per token on one thread (4 layers, width 192: the
per-op overhead of eager PyTorch dominates the arithmetic at this size). A four-voice chorale
needs ~18 tokens per second of music, so it lands well under the 100x goal; one-voice styles need
fewer tokens per second. Rendering is never the bottleneck. Timings are wall clock on a 2-core
box shared with other jobs, so they vary from run to run.

## Limits

- Every style is written on a 4/4 bar grid; 3/4 and 6/8 tunes were tokenized on that grid too.
- Tempo is not a model token (REMI positions are in beats and the corpus has almost no tempo
  marks): the requested tempo goes into the MIDI and the render.
- Key is conditioned by transposition (mode token + transposing from C major / A minor), so
  the model never has to learn 24 keys from 1,700 pieces.
- Sampling masks the REMI grammar (no empty bars, time moves forward in a bar, no voices
  beyond the style's count), so every sample decodes; EOS is held off until the requested length.

## A sample

![sample](figures/sample_chorale.png)

`figures/sample_chorale.mid` is that piece.
"""
    (HERE / "RESULTS.md").write_text(text)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    main()
