"""Train the offline art model: a small pixel-space UNet2DConditionModel on procedural scenes.

    OMP_NUM_THREADS=1 python -m training.art_model.train --time-budget-min 120

Resumes automatically from the checkpoint in --ckpt-dir (optimizer, EMA, step, RNG state),
so the same command continues a run in a later session. The EMA weights are exported
regularly as a diffusers `save_pretrained` folder (--export-dir), which is what the app loads.

Recipe (see training/art_model/RESULTS.md): v-prediction on a cosine schedule rescaled to zero
terminal SNR, min-SNR-5 loss weighting, 10% caption dropout for classifier-free guidance,
AdamW, EMA of the weights, captions encoded once by MiniLM and cached.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from diffusers import UNet2DConditionModel

from pipelines.art.pixel_diffusion import (
    MINILM_WHEEL_MODULE,
    TEXT_MAX_LENGTH,
    MiniLMTextEncoder,
    PixelDiffusionPipeline,
    default_scheduler,
)
from training.art_model import dataset
from training.diffusion_loop import State, train_v_prediction

logger = logging.getLogger("art_model.train")

DEFAULT_CKPT_DIR = Path("/root/.cache/creative-studio/art-train")
DEFAULT_EXPORT_DIR = Path(__file__).resolve().parents[2] / "assets" / "models" / "art-offline-shapes"


@dataclass
class ModelConfig:
    sample_size: int = dataset.SIZE  # native resolution (pixels)
    block_out_channels: tuple[int, ...] = (32, 64, 128)  # channels at 32, 16, 8 px
    layers_per_block: int = 1  # resnets per down block (up blocks get one more)
    attention_head_dim: int = 32  # channels per attention head
    cross_attention_dim: int = 384  # MiniLM hidden size
    # attention only at 8x8 (and the mid block): at 16x16 it doubled the step time on this CPU
    down_block_types: tuple[str, ...] = ("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D")
    up_block_types: tuple[str, ...] = ("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D")
    norm_num_groups: int = 32  # GroupNorm groups
    addition_embed_type: str | None = "text"  # attention-pooled caption added to the time embedding

    def build(self) -> UNet2DConditionModel:
        return UNet2DConditionModel(
            sample_size=self.sample_size,
            in_channels=3,
            out_channels=3,
            block_out_channels=self.block_out_channels,
            layers_per_block=self.layers_per_block,
            down_block_types=self.down_block_types,
            up_block_types=self.up_block_types,
            cross_attention_dim=self.cross_attention_dim,
            attention_head_dim=self.attention_head_dim,
            norm_num_groups=self.norm_num_groups,
            addition_embed_type=self.addition_embed_type,
            addition_embed_type_num_heads=8,
        )


@dataclass
class TrainConfig:
    seed: int = 1234  # fixes data order, init and noise
    batch_size: int = 16  # images per step (0.52 s/step on 1 thread for the 4.7M UNet)
    lr: float = 1e-3  # AdamW peak learning rate (after warmup)
    warmup_steps: int = 500  # linear LR warmup
    weight_decay: float = 0.01  # AdamW decoupled weight decay
    grad_clip: float = 1.0  # max grad norm
    caption_dropout: float = (
        0.1  # fraction of captions replaced by "" (teaches the unconditional model for CFG)
    )
    min_snr_gamma: float = 5.0  # min-SNR loss weighting (Hang et al. 2023)
    ema_decay: float = 0.999  # EMA of weights; warmed up as (1+step)/(10+step)
    num_train_timesteps: int = 1000  # diffusion steps of the training schedule
    max_steps: int = 1_000_000  # hard stop (the time budget usually stops first)
    time_budget_min: float = 60.0  # wall-clock minutes for THIS invocation
    log_every: int = 50  # steps between log lines
    ckpt_every_min: float = 10.0  # minutes between resumable checkpoints
    export_every_min: float = 20.0  # minutes between EMA exports to export_dir
    snapshot_every: int = 1000  # steps between EMA snapshots kept for evaluation (e.g. FID at 10%)
    model: ModelConfig = field(default_factory=ModelConfig)


# ----------------------------------------------------------------------------------------------
# text-embedding cache


def caption_cache(ckpt_dir: Path) -> tuple[dict[str, int], torch.Tensor]:
    """MiniLM encodings of every training caption, computed once: (caption -> row, [N, 1+L, 384] fp16)."""
    captions = dataset.all_train_captions()
    key = hashlib.sha1(json.dumps([captions, MINILM_WHEEL_MODULE, TEXT_MAX_LENGTH]).encode()).hexdigest()[:12]
    path = ckpt_dir / f"text_cache_{key}.pt"
    if path.exists():
        table = torch.load(path)
    else:
        logger.info("encoding %d captions with MiniLM (once)", len(captions))
        t0 = time.time()
        table = MiniLMTextEncoder()(captions).half()
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        torch.save(table, path)
        logger.info("encoded in %.1fs -> %s", time.time() - t0, path)
    return {c: i for i, c in enumerate(captions)}, table


# ----------------------------------------------------------------------------------------------
# training state


def export_pipeline(ema: dict[str, torch.Tensor], model_cfg: ModelConfig, out_dir: Path, step: int) -> None:
    """Write the EMA weights as a loadable diffusers pipeline folder (fp32, a few MB)."""
    unet = model_cfg.build()
    unet.load_state_dict(ema)
    pipe = PixelDiffusionPipeline(unet=unet, scheduler=default_scheduler())
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    pipe.save_pretrained(tmp, safe_serialization=True)
    (tmp / "training_step.json").write_text(json.dumps({"step": step}) + "\n")
    if out_dir.exists():
        old = out_dir.with_name(out_dir.name + ".old")
        os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        for f in sorted(old.rglob("*"), reverse=True):
            f.unlink() if f.is_file() else f.rmdir()
        old.rmdir()
    else:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, out_dir)
    logger.info("exported EMA weights at step %d -> %s", step, out_dir)


def train(cfg: TrainConfig, ckpt_dir: Path, export_dir: Path | None) -> State:
    """Train the pixel UNet on freshly rendered scenes (training.diffusion_loop runs the steps)."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    index, table = caption_cache(ckpt_dir)
    empty_row = index[""]

    def next_batch(rng: random.Random, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        # a fresh batch of procedural scenes, one random caption each (some dropped for CFG)
        images, scenes = dataset.render_batch(rng, n)
        x0 = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1  # [B, 3, 32, 32] in [-1, 1]
        rows = [
            empty_row if rng.random() < cfg.caption_dropout else index[rng.choice(dataset.train_captions(s))]
            for s in scenes
        ]
        return x0, table[rows].float()  # cond: [B, 1+L, 384]

    def export_ema(ema: dict, step: int) -> None:
        export_pipeline(ema, cfg.model, export_dir, step)

    return train_v_prediction(
        cfg,
        default_scheduler(cfg.num_train_timesteps),
        next_batch,
        ckpt_dir / "ckpt.pt",
        export_ema if export_dir is not None else None,
        logger,
    )


def benchmark(model_cfg: ModelConfig, batch_size: int, steps: int = 6) -> float:
    """Seconds per training step (after one warm-up step) on the current thread count."""
    unet = model_cfg.build()
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    x = torch.randn(batch_size, 3, model_cfg.sample_size, model_cfg.sample_size)
    cond = torch.randn(batch_size, 1 + TEXT_MAX_LENGTH, model_cfg.cross_attention_dim)
    times = []
    for _ in range(steps + 1):
        t0 = time.time()
        loss = unet(x, torch.randint(0, 1000, (batch_size,)), encoder_hidden_states=cond).sample.pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.time() - t0)
    return float(np.mean(times[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--time-budget-min", type=float, default=TrainConfig.time_budget_min)
    parser.add_argument("--max-steps", type=int, default=TrainConfig.max_steps)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--lr", type=float, default=TrainConfig.lr)
    parser.add_argument("--ckpt-dir", type=Path, default=DEFAULT_CKPT_DIR)
    parser.add_argument("--export-dir", type=Path, default=DEFAULT_EXPORT_DIR)
    parser.add_argument("--no-export", action="store_true", help="never write --export-dir")
    parser.add_argument(
        "--bench", action="store_true", help="time a few steps of candidate model sizes and exit"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    if args.bench:
        candidates = {
            "32-64-64": ModelConfig(block_out_channels=(32, 64, 64)),
            "64-96-128": ModelConfig(),
            "64-128-128": ModelConfig(block_out_channels=(64, 128, 128)),
        }
        for name, mc in candidates.items():
            n = sum(p.numel() for p in mc.build().parameters()) / 1e6
            for bs in (16, 32):
                logger.info("bench %s (%.2fM params) batch %d: %.3f s/step", name, n, bs, benchmark(mc, bs))
        return

    cfg = TrainConfig(
        time_budget_min=args.time_budget_min, max_steps=args.max_steps, batch_size=args.batch_size, lr=args.lr
    )
    ckpt_cfg = args.ckpt_dir / "ckpt.pt"
    if ckpt_cfg.exists():
        saved = torch.load(ckpt_cfg, weights_only=False)["config"]
        if saved["batch_size"] != cfg.batch_size:
            logger.warning(
                "checkpoint was trained with batch %d; continuing with %d",
                saved["batch_size"],
                cfg.batch_size,
            )
    final = train(cfg, args.ckpt_dir, None if args.no_export else args.export_dir)
    logger.info(
        "done: step %d, %.1f min of training in total, %d images seen",
        final.step,
        final.elapsed_s / 60,
        final.samples_seen,
    )
    _ = math  # (kept for schedule maths in future LR decays)


if __name__ == "__main__":
    main()
