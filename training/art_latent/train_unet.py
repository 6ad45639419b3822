"""Train the text-conditioned latent UNet of the offline art model v2 (resumable).

    OMP_NUM_THREADS=1 nohup nice -n 5 python -m training.art_latent.train_unet \
        --time-budget-min 100000 >> /work/ckpt/art17/logs/unet.log 2>&1 &

Needs the outputs of `training.art_latent.dataset` (images + meta) and
`training.art_latent.autoencoder` (<ckpt-dir>/vae/ and the latent cache <ckpt-dir>/latents.pt).
Resumes automatically from <ckpt-dir>/unet_ckpt.pt (weights, optimizer, EMA, step, RNG state);
a kill at any moment loses at most --ckpt-every-min minutes. EMA weights are exported every
--export-every-min minutes to <ckpt-dir>/export/ (unet/ + vae/ + scheduler/, safetensors), and an
EMA snapshot is kept every --snapshot-every steps for evaluation.

Recipe (v1's, see training/art_model/RESULTS.md): v-prediction on a cosine schedule rescaled to
zero terminal SNR, min-SNR-5 weighting, 10% caption dropout for classifier-free guidance, AdamW
with warm-up, EMA. Captions are encoded once by MiniLM (v1's encoder) and cached.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

from pipelines.art.latent_diffusion import LatentArtPipeline
from pipelines.art.pixel_diffusion import MiniLMTextEncoder
from pipelines.art.vocabulary import save_vocabulary
from training.art_latent import dataset as ds_mod
from training.diffusion_loop import State, train_v_prediction

logger = logging.getLogger("art_latent.train_unet")

DEFAULT_CKPT_DIR = Path("/work/ckpt/art17")
TEXT_MAX_LENGTH = 28  # MiniLM word pieces per caption: the longest training caption has 28
LATENT_CHANNELS = 4
LATENT_SIZE = 16


@dataclass
class UNetConfig:
    sample_size: int = LATENT_SIZE
    block_out_channels: tuple[int, ...] = (64, 128, 128)  # channels at 16, 8, 4 latent px
    layers_per_block: int = 1
    attention_head_dim: int = 32
    cross_attention_dim: int = 384  # MiniLM hidden size
    down_block_types: tuple[str, ...] = ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D")
    up_block_types: tuple[str, ...] = ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")
    norm_num_groups: int = 32
    addition_embed_type: str | None = "text"  # attention-pooled caption added to the time embedding

    def build(self) -> UNet2DConditionModel:
        return UNet2DConditionModel(
            sample_size=self.sample_size,
            in_channels=LATENT_CHANNELS,
            out_channels=LATENT_CHANNELS,
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
    seed: int = 1234
    batch_size: int = 16
    lr: float = 6e-4
    warmup_steps: int = 500
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    caption_dropout: float = 0.1
    shapes_fraction: float = 0.12  # share of each batch drawn from v1's procedural scenes
    min_snr_gamma: float = 5.0
    ema_decay: float = 0.9995
    num_train_timesteps: int = 1000
    max_steps: int = 10_000_000
    time_budget_min: float = 60.0
    log_every: int = 50
    ckpt_every_min: float = 10.0
    export_every_min: float = 30.0
    snapshot_every: int = 2000
    model: UNetConfig = field(default_factory=UNetConfig)


def latent_scheduler(num_train_timesteps: int = 1000) -> DDIMScheduler:
    """v1's schedule (cosine, zero terminal SNR, v-prediction, trailing) without pixel clipping:
    latents are not bounded to [-1, 1]."""
    return DDIMScheduler(
        num_train_timesteps=num_train_timesteps,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        timestep_spacing="trailing",
        clip_sample=False,
        set_alpha_to_one=True,
    )


# ----------------------------------------------------------------------------------------------
# caches


def text_encoder(max_length: int = TEXT_MAX_LENGTH):
    return MiniLMTextEncoder(max_length=max_length)


def caption_cache(captions: list[str], path_dir: Path, max_length: int = TEXT_MAX_LENGTH):
    """(caption -> row, [N, 1+L, 384] fp16) of MiniLM encodings, computed once and cached."""
    key = hashlib.sha1(json.dumps([captions, max_length]).encode()).hexdigest()[:12]
    path = path_dir / f"text_cache_{key}.pt"
    if path.exists():
        table = torch.load(path)
    else:
        logger.info("encoding %d captions with MiniLM (once)", len(captions))
        t0 = time.time()
        table = text_encoder(max_length)(captions).half()
        path_dir.mkdir(parents=True, exist_ok=True)
        torch.save(table, path)
        logger.info("encoded in %.0fs -> %s", time.time() - t0, path)
    return {c: i for i, c in enumerate(captions)}, table


# ----------------------------------------------------------------------------------------------
# training


class Batcher:
    """Draws (latents, caption rows) from the cached latents; held-out pairs are not in the cache."""

    def __init__(self, ds: ds_mod.Dataset, cache: dict, index: dict[str, int], cfg: TrainConfig) -> None:
        self.latents = cache["latents"]  # [N, V, C, h, w] fp16
        self.items = [ds.items[i] for i in cache["index"].tolist()]
        assert all(it.split == "train" for it in self.items), "held-out image in the latent cache"
        self.emoji = [k for k, it in enumerate(self.items) if it.style != ds_mod.SHAPES_STYLE]
        self.shapes = [k for k, it in enumerate(self.items) if it.style == ds_mod.SHAPES_STYLE]
        self.index = index
        self.cfg = cfg

    def __call__(self, rng: random.Random, n: int) -> tuple[torch.Tensor, list[int]]:
        rows, lats = [], []
        for _ in range(n):
            pool = self.shapes if self.shapes and rng.random() < self.cfg.shapes_fraction else self.emoji
            k = rng.choice(pool)
            lats.append(self.latents[k, rng.randrange(self.latents.shape[1])])
            cap = "" if rng.random() < self.cfg.caption_dropout else rng.choice(self.items[k].captions)
            rows.append(self.index[cap])
        return torch.stack(lats).float(), rows


def export(
    ema: dict, model_cfg: UNetConfig, vae_dir: Path, out_dir: Path, step: int, vocabulary: dict | None = None
) -> None:
    """EMA UNet + the VAE + the scheduler as a LatentArtPipeline folder (safetensors), replaced atomically.

    With a `vocabulary` (dataset.vocabulary), the folder also says what the model knows, for the UI.
    """
    unet = model_cfg.build()
    unet.load_state_dict(ema)
    pipe = LatentArtPipeline(
        vae=AutoencoderKL.from_pretrained(vae_dir),
        unet=unet,
        scheduler=latent_scheduler(),
        text_max_length=TEXT_MAX_LENGTH,
    )
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.save_pretrained(tmp, safe_serialization=True)
    (tmp / "training_step.json").write_text(json.dumps({"step": step}) + "\n")
    if vocabulary is not None:
        save_vocabulary(tmp, vocabulary)
    old = out_dir.with_name(out_dir.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    shutil.rmtree(old, ignore_errors=True)
    logger.info("exported EMA weights at step %d -> %s", step, out_dir)


def train(
    cfg: TrainConfig, ds: ds_mod.Dataset, ckpt_dir: Path, cache_path: Path, export_dir: Path | None
) -> State:
    """Train the latent UNet on cached VAE latents (training.diffusion_loop runs the steps)."""
    cache = torch.load(cache_path)
    index, table = caption_cache(ds_mod.all_captions(ds), ckpt_dir)
    batcher = Batcher(ds, cache, index, cfg)

    def next_batch(rng: random.Random, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x0, rows = batcher(rng, n)
        return x0, table[rows].float()

    def export_ema(ema: dict, step: int) -> None:
        export(ema, cfg.model, ckpt_dir / "vae", export_dir, step, ds_mod.vocabulary(ds))

    return train_v_prediction(
        cfg,
        latent_scheduler(cfg.num_train_timesteps),
        next_batch,
        ckpt_dir / "unet_ckpt.pt",
        export_ema if export_dir is not None else None,
        logger,
    )


def benchmark(model_cfg: UNetConfig, batch_size: int, steps: int = 5) -> float:
    unet = model_cfg.build()
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    x = torch.randn(batch_size, LATENT_CHANNELS, LATENT_SIZE, LATENT_SIZE)
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
    parser.add_argument("--data-dir", type=Path, default=ds_mod.DEFAULT_DATA_DIR)
    parser.add_argument("--ckpt-dir", type=Path, default=DEFAULT_CKPT_DIR)
    parser.add_argument("--time-budget-min", type=float, default=TrainConfig.time_budget_min)
    parser.add_argument("--max-steps", type=int, default=TrainConfig.max_steps)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--export-every-min", type=float, default=TrainConfig.export_every_min)
    parser.add_argument("--ckpt-every-min", type=float, default=TrainConfig.ckpt_every_min)
    parser.add_argument("--bench", action="store_true")
    parser.add_argument("--encode-captions-only", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if args.bench:
        for boc in [(64, 128, 192), (96, 192, 256), (128, 256, 256)]:
            mc = UNetConfig(block_out_channels=boc)
            n = sum(p.numel() for p in mc.build().parameters()) / 1e6
            logger.info(
                "bench %s (%.2fM) batch %d: %.3f s/step",
                boc,
                n,
                args.batch_size,
                benchmark(mc, args.batch_size),
            )
        return
    ds = ds_mod.load(args.data_dir)
    if args.encode_captions_only:
        caption_cache(ds_mod.all_captions(ds), args.ckpt_dir)
        return
    cfg = TrainConfig(
        time_budget_min=args.time_budget_min,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        export_every_min=args.export_every_min,
        ckpt_every_min=args.ckpt_every_min,
    )
    final = train(cfg, ds, args.ckpt_dir, args.ckpt_dir / "latents.pt", args.ckpt_dir / "export")
    logger.info(
        "done: step %d, %.1f min trained, %d images seen",
        final.step,
        final.elapsed_s / 60,
        final.samples_seen,
    )


if __name__ == "__main__":
    main()
