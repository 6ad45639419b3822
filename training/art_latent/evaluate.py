"""Score an export of the latent art model with the judge (training/art_latent/classifier.py).

    OMP_NUM_THREADS=1 python -m training.art_latent.evaluate --export /work/ckpt/art17/export --write

Measures (the keys of `python -m benchmarks art_offline` for v2):

- subject_top5_seen: generated images of training (subject, style) pairs, canonical caption;
  fraction whose subject is in the judge's top 5
- subject_top5_heldout: the same for the held-out pairs (never seen in training)
- style_accuracy: judge style == prompted style (seen pairs)
- category_accuracy: judge category == prompted category (seen + held-out)
- fid_style: Frechet distance of judge features (192-d) between generated images and the real
  images of the same pairs; reported with a real-vs-real floor (real vs augmented real), v1's
  pixel model on the same captions (upscaled to 64 px), and a copy baseline that returns the
  training image whose caption is nearest (MiniLM sentence embedding) to the prompt
- s_per_image: seconds for one image at 25 DDIM steps with CFG on one thread, and v1's at its
  native 32 px for comparison

The judge's own accuracy on the REAL images of the held-out pairs is reported as the ceiling.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pipelines.art.latent_diffusion import LatentArtPipeline
from pipelines.art.pixel_diffusion import PixelDiffusionPipeline
from training.art_latent import classifier as judge_mod
from training.art_latent import dataset as ds_mod
from training.art_model.evaluate import frechet_distance

logger = logging.getLogger("art_latent.evaluate")
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
V1_DIR = REPO / "assets" / "models" / "art-offline-shapes"
RESULTS_JSON = HERE / "results.json"


def prompt_pairs(
    ds: ds_mod.Dataset, n_seen: int = 96, seed: int = 0, n_heldout: int | None = None
) -> dict[str, list[int]]:
    """Dataset indices of the evaluated pairs: a fixed sample of seen pairs, and the held-out pairs
    (all of them, or a fixed sample of `n_heldout`)."""
    seen = ds.indices("train", emoji_only=True)
    held = ds.indices("heldout", emoji_only=True)
    return {
        "seen": sorted(random.Random(seed).sample(seen, n_seen)),
        "heldout": sorted(random.Random(seed).sample(held, min(n_heldout or len(held), len(held)))),
    }


def load_pipeline(export: Path) -> tuple[LatentArtPipeline, int | None]:
    pipe = LatentArtPipeline.from_pretrained(export)
    pipe.set_progress_bar_config(disable=True)
    step_file = export / "training_step.json"
    step = json.loads(step_file.read_text())["step"] if step_file.exists() else None
    return pipe, step


@torch.no_grad()
def generate(
    pipe, prompts: list[str], guidance: float, steps: int = 25, seed: int = 0, batch: int = 16
) -> np.ndarray:
    """[N, 64, 64, 3] uint8, one image per prompt, noise seed `seed + i`."""
    out = []
    for s in range(0, len(prompts), batch):
        chunk = prompts[s : s + batch]
        gens = [torch.Generator().manual_seed(seed + s + i) for i in range(len(chunk))]
        imgs = pipe(
            chunk,
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=gens,
            output_type="np",
            upscale=1,
        ).images
        out.append((np.asarray(imgs) * 255 + 0.5).clip(0, 255).astype(np.uint8))
    images = np.concatenate(out)
    if images.shape[1] != ds_mod.SIZE:  # v1 draws at 32 px
        images = np.stack(
            [
                np.asarray(Image.fromarray(im).resize((ds_mod.SIZE, ds_mod.SIZE), Image.Resampling.BICUBIC))
                for im in images
            ]
        )
    return images


def copy_baseline(ds: ds_mod.Dataset, pipe, query_idx: list[int]) -> np.ndarray:
    """For each prompt, the TRAINING image whose canonical caption is nearest in MiniLM's sentence
    space (token 0 of the cached encodings; only the queries are encoded here)."""
    from training.art_latent.train_unet import DEFAULT_CKPT_DIR, caption_cache

    train = ds.indices("train", emoji_only=True)
    index, table = caption_cache(ds_mod.all_captions(ds), DEFAULT_CKPT_DIR)
    keys = table[[index[ds.items[i].captions[0]] for i in train], 0].float()
    queries = pipe.text_encoder([ds.items[i].captions[0] for i in query_idx])[:, 0]
    sim = torch.nn.functional.normalize(queries, dim=1) @ torch.nn.functional.normalize(keys, dim=1).T
    return ds.images[[train[j] for j in sim.argmax(1).tolist()]]


def score(
    judge, lab: judge_mod.Labels, images: np.ndarray, items: list[ds_mod.Item]
) -> tuple[dict, np.ndarray]:
    logits, feats = judge_mod.predict(judge, judge_mod.to_tensor(images))
    y = torch.tensor([lab.encode(it) for it in items])
    return judge_mod.accuracy(logits, y), feats


def time_per_image(pipe, prompt: str, guidance: float, runs: int = 3) -> float:
    times = []
    for r in range(runs + 1):
        t0 = time.perf_counter()
        pipe(
            prompt,
            num_inference_steps=25,
            guidance_scale=guidance,
            generator=torch.Generator().manual_seed(r),
            output_type="np",
            upscale=1,
        )
        times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))


def evaluate(
    export: Path,
    ds: ds_mod.Dataset,
    guidance: float,
    with_baselines: bool = True,
    n_seen: int = 96,
    n_heldout: int | None = None,
) -> dict:
    judge, lab, judge_info = judge_mod.load_judge()
    pipe, step = load_pipeline(export)
    pairs = prompt_pairs(ds, n_seen, n_heldout=n_heldout)
    result: dict = {
        "step": step,
        "guidance": guidance,
        "n_seen": len(pairs["seen"]),
        "n_heldout": len(pairs["heldout"]),
    }
    feats: dict[str, np.ndarray] = {}
    for name, idx in pairs.items():
        items = [ds.items[i] for i in idx]
        t0 = time.time()
        gen = generate(pipe, [it.captions[0] for it in items], guidance)
        logger.info("generated %d %s images in %.0fs", len(idx), name, time.time() - t0)
        acc, feats[f"gen_{name}"] = score(judge, lab, gen, items)
        result[f"generated_{name}"] = acc
        real_acc, feats[f"real_{name}"] = score(judge, lab, ds.images[idx], items)
        result[f"real_{name}"] = real_acc
        result.setdefault("_gen", {})[name] = gen
    n_s, n_h = len(pairs["seen"]), len(pairs["heldout"])
    result["subject_top5_seen"] = result["generated_seen"]["subject_top5"]
    result["subject_top5_heldout"] = result["generated_heldout"]["subject_top5"]
    result["style_accuracy"] = result["generated_seen"]["style"]
    result["category_accuracy"] = (
        result["generated_seen"]["category"] * n_s + result["generated_heldout"]["category"] * n_h
    ) / (n_s + n_h)
    gen_f = np.concatenate([feats["gen_seen"], feats["gen_heldout"]])
    real_f = np.concatenate([feats["real_seen"], feats["real_heldout"]])
    result["fid_style"] = frechet_distance(gen_f, real_f)
    all_idx = pairs["seen"] + pairs["heldout"]
    all_items = [ds.items[i] for i in all_idx]
    rng = random.Random(5)
    aug = np.stack([ds_mod.augment(ds.images[i], rng, ds.items[i].flip_ok, False) for i in all_idx])
    result["fid_floor_real_vs_augmented"] = frechet_distance(score(judge, lab, aug, all_items)[1], real_f)
    if with_baselines:
        copies = copy_baseline(ds, pipe, all_idx)
        acc, f = score(judge, lab, copies, all_items)
        result["copy_baseline"] = {"fid_style": frechet_distance(f, real_f), **acc}
        if (V1_DIR / "model_index.json").exists():
            v1 = PixelDiffusionPipeline.from_pretrained(V1_DIR)
            v1.set_progress_bar_config(disable=True)
            v1_imgs = generate(v1, [it.captions[0] for it in all_items], guidance=2.0)
            acc, f = score(judge, lab, v1_imgs, all_items)
            result["v1"] = {"fid_style": frechet_distance(f, real_f), **acc}
            result["v1_s_per_image_32px"] = time_per_image(v1, "a red apple", 2.0)
    result["s_per_image"] = time_per_image(pipe, all_items[0].captions[0], guidance)
    result["judge"] = {
        k: judge_info[k] for k in ("train_real", "heldout_real", "steps", "n_train", "n_heldout")
    }
    return result


def save_grid(
    gen: dict[str, np.ndarray], ds: ds_mod.Dataset, pairs: dict[str, list[int]], path: Path, n: int = 8
) -> None:
    """Rows: real / generated, for n seen and n held-out pairs, with the subject/style label."""
    from PIL import ImageDraw

    cols = []
    for name in ("seen", "heldout"):
        for k in range(min(n, len(pairs[name]))):
            i = pairs[name][k]
            cols.append(
                (
                    ds.images[i],
                    gen[name][k],
                    f"{ds.items[i].subject[:12]}",
                    f"{ds.items[i].style}{'*' if name == 'heldout' else ''}",
                )
            )
    tile = 128
    sheet = Image.new("RGB", (len(cols) * tile, 2 * tile + 28), "white")
    draw = ImageDraw.Draw(sheet)
    for c, (real, fake, l1, l2) in enumerate(cols):
        sheet.paste(Image.fromarray(real).resize((tile, tile), Image.Resampling.NEAREST), (c * tile, 0))
        sheet.paste(Image.fromarray(fake).resize((tile, tile), Image.Resampling.NEAREST), (c * tile, tile))
        draw.text((c * tile + 2, 2 * tile + 2), l1, fill="black")
        draw.text((c * tile + 2, 2 * tile + 14), l2, fill="black")
    sheet.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--export", type=Path, default=Path("/work/ckpt/art17/export"))
    parser.add_argument("--data-dir", type=Path, default=ds_mod.DEFAULT_DATA_DIR)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--n-seen", type=int, default=96)
    parser.add_argument("--n-heldout", type=int, default=None, help="default: all 107 held-out pairs")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--write", action="store_true", help="append to results.json")
    parser.add_argument("--grid", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    ds = ds_mod.load(args.data_dir)
    res = evaluate(args.export, ds, args.guidance, not args.no_baselines, args.n_seen, args.n_heldout)
    gen = res.pop("_gen")
    if args.grid:
        save_grid(gen, ds, prompt_pairs(ds, args.n_seen, n_heldout=args.n_heldout), args.grid)
    print(json.dumps(res, indent=1))
    if args.write:
        runs = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else []
        runs.append(res)
        RESULTS_JSON.write_text(json.dumps(runs, indent=1) + "\n")


if __name__ == "__main__":
    main()
