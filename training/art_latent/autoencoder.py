"""Train the small AutoencoderKL of the latent art model (64 px RGB <-> 4 x 16 x 16 latents).

    OMP_NUM_THREADS=1 python -m training.art_latent.autoencoder --steps 4000

L1 + MSE reconstruction with a tiny KL term, on augmented training images (held-out pairs are
never used). Resumable from <ckpt-dir>/vae_ckpt.pt; writes the trained model as a diffusers
folder <ckpt-dir>/vae/ with `scaling_factor` set to 1 / std of the training latents, reports
PSNR on the held-out images, and saves a reconstruction sheet.

`encode_cache()` then encodes every training image in a few augmented variants once, so the
UNet training never runs the encoder.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

from training.art_latent import dataset as ds_mod

logger = logging.getLogger("art_latent.autoencoder")
DEFAULT_CKPT_DIR = Path("/work/ckpt/art17")


@dataclass
class VAEConfig:
    block_out_channels: tuple[int, ...] = (32, 64, 64)  # 3 levels -> 4x down-sampling
    layers_per_block: int = 1
    latent_channels: int = 4
    norm_num_groups: int = 16

    def build(self) -> AutoencoderKL:
        n = len(self.block_out_channels)
        return AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * n,
            up_block_types=("UpDecoderBlock2D",) * n,
            block_out_channels=self.block_out_channels,
            layers_per_block=self.layers_per_block,
            latent_channels=self.latent_channels,
            norm_num_groups=self.norm_num_groups,
            sample_size=ds_mod.SIZE,
            mid_block_add_attention=False,  # attention at 16x16 costs more than it helps here
        )


@dataclass
class VAETrainConfig:
    seed: int = 0
    batch_size: int = 16
    lr: float = 1e-3
    steps: int = 4000
    kl_weight: float = 1e-6
    log_every: int = 50
    ckpt_every_min: float = 5.0
    model: VAEConfig = dataclasses.field(default_factory=VAEConfig)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """[N, H, W, 3] uint8 -> [N, 3, H, W] float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x.clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean PSNR (dB) of images in [-1, 1]."""
    mse = ((a.clamp(-1, 1) - b) / 2).pow(2).mean(dim=(1, 2, 3)).clamp(min=1e-10)
    return float((10 * torch.log10(1 / mse)).mean())


def batch_from(ds: ds_mod.Dataset, idx: list[int], rng: random.Random) -> torch.Tensor:
    imgs = [ds_mod.augment(ds.images[i], rng, ds.items[i].flip_ok, ds.items[i].jitter_ok) for i in idx]
    return to_tensor(np.stack(imgs))


@torch.no_grad()
def evaluate(vae: AutoencoderKL, images: torch.Tensor, batch: int = 64) -> tuple[float, torch.Tensor]:
    vae.eval()
    outs = []
    for s in range(0, len(images), batch):
        x = images[s : s + batch]
        outs.append(vae.decode(vae.encode(x).latent_dist.mean).sample)
    rec = torch.cat(outs)
    return psnr(rec, images), rec


def train(cfg: VAETrainConfig, ds: ds_mod.Dataset, ckpt_dir: Path, time_budget_min: float) -> AutoencoderKL:
    torch.manual_seed(cfg.seed)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    path = ckpt_dir / "vae_ckpt.pt"
    vae = cfg.model.build()
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.lr, weight_decay=0.0)
    step, rng = 0, random.Random(cfg.seed)
    if path.exists():
        ck = torch.load(path, weights_only=False)
        vae.load_state_dict(ck["vae"])
        opt.load_state_dict(ck["opt"])
        step = ck["step"]
        rng.setstate(ck["rng"])
        logger.info("resumed VAE at step %d", step)
    logger.info("VAE: %.3fM parameters", sum(p.numel() for p in vae.parameters()) / 1e6)
    train_idx = ds.indices("train")
    held = to_tensor(ds.images[ds.indices("heldout")])
    vae.train()
    start = last_ckpt = time.time()
    window, t0 = 0.0, time.time()
    while step < cfg.steps and time.time() - start < time_budget_min * 60:
        x = batch_from(ds, rng.sample(train_idx, cfg.batch_size), rng)
        post = vae.encode(x).latent_dist
        rec = vae.decode(post.sample()).sample
        kl = post.kl().mean() / x[0].numel()
        loss = F.l1_loss(rec, x) + F.mse_loss(rec, x) + cfg.kl_weight * kl
        lr = cfg.lr * min(1.0, (step + 1) / 200) * (0.1 if step > 0.8 * cfg.steps else 1.0)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        step += 1
        window += loss.item()
        if step % cfg.log_every == 0:
            logger.info(
                "vae step %d loss %.4f kl %.1f %.3f s/step",
                step,
                window / cfg.log_every,
                kl.item(),
                (time.time() - t0) / cfg.log_every,
            )
            window, t0 = 0.0, time.time()
        if step % 500 == 0:
            p, _ = evaluate(vae, held[:64])
            logger.info("vae step %d held-out PSNR %.2f dB (64 images)", step, p)
            vae.train()
        if time.time() - last_ckpt > cfg.ckpt_every_min * 60:
            _save(path, vae, opt, step, rng, cfg)
            last_ckpt = time.time()
    _save(path, vae, opt, step, rng, cfg)
    return vae


def _save(path: Path, vae, opt, step: int, rng: random.Random, cfg: VAETrainConfig) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "vae": vae.state_dict(),
            "opt": opt.state_dict(),
            "step": step,
            "rng": rng.getstate(),
            "config": dataclasses.asdict(cfg),
        },
        tmp,
    )
    os.replace(tmp, path)
    logger.info("VAE checkpoint step %d -> %s", step, path)


@torch.no_grad()
def finalize(vae: AutoencoderKL, ds: ds_mod.Dataset, out_dir: Path) -> dict:
    """Set scaling_factor from the training latents, save the diffusers folder, report PSNR."""
    vae.eval()
    idx = ds.indices("train")
    sample = to_tensor(ds.images[random.Random(1).sample(idx, min(512, len(idx)))])
    lat = torch.cat([vae.encode(sample[s : s + 64]).latent_dist.mean for s in range(0, len(sample), 64)])
    mean, std = float(lat.mean()), float(lat.std())
    vae.register_to_config(scaling_factor=1.0 / std)
    held_idx = ds.indices("heldout")
    p_held, rec = evaluate(vae, to_tensor(ds.images[held_idx]))
    p_train, _ = evaluate(vae, sample[:256])
    vae.save_pretrained(out_dir, safe_serialization=True)
    sheet = np.concatenate([ds.images[held_idx[:32]], to_uint8(rec[:32])])
    ds_mod.contact_sheet(sheet, cols=16, scale=2).save(out_dir / "reconstructions.png")
    info = {
        "psnr_heldout_db": round(p_held, 2),
        "psnr_train_db": round(p_train, 2),
        "n_heldout": len(held_idx),
        "latent_mean": round(mean, 4),
        "latent_std": round(std, 4),
        "scaling_factor": round(1.0 / std, 4),
        "params_m": round(sum(p.numel() for p in vae.parameters()) / 1e6, 3),
    }
    (out_dir / "vae_results.json").write_text(json.dumps(info, indent=1) + "\n")
    logger.info("VAE final: %s", info)
    return info


def finetune_decoder(
    vae_dir: Path,
    ds: ds_mod.Dataset,
    steps: int,
    time_budget_min: float,
    batch_size: int = 16,
    lr: float = 3e-4,
) -> dict:
    """Train only the decoder (and post_quant_conv) of the finished VAE, in place, resumably.

    The encoder is frozen, so the latent space, the latent cache and `scaling_factor` stay
    valid: a UNet trained on these latents keeps working and simply gets sharper decodes (its
    exports copy the VAE from `vae_dir` each time). State: `vae_dir/decoder_ft.pt`.
    """
    vae = load_vae(vae_dir)
    for p in vae.parameters():
        p.requires_grad_(False)
    params = [*vae.decoder.parameters(), *vae.post_quant_conv.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    state_path = vae_dir / "decoder_ft.pt"
    step, rng = 0, random.Random(3)
    if state_path.exists():
        ck = torch.load(state_path, weights_only=False)
        vae.load_state_dict(ck["vae"])
        opt.load_state_dict(ck["opt"])
        step, _ = ck["step"], rng.setstate(ck["rng"])
    train_idx = ds.indices("train")
    held = to_tensor(ds.images[ds.indices("heldout")])
    before, _ = evaluate(vae, held)
    start = time.time()
    vae.decoder.train()
    while step < steps and time.time() - start < time_budget_min * 60:
        x = batch_from(ds, rng.sample(train_idx, batch_size), rng)
        with torch.no_grad():
            z = vae.encode(x).latent_dist.mean
        rec = vae.decode(z).sample
        loss = F.l1_loss(rec, x) + F.mse_loss(rec, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 50 == 0:
            logger.info("decoder ft step %d loss %.4f", step, loss.item())
    after, rec = evaluate(vae, held)
    tmp = state_path.with_suffix(".tmp")
    torch.save({"vae": vae.state_dict(), "opt": opt.state_dict(), "step": step, "rng": rng.getstate()}, tmp)
    os.replace(tmp, state_path)
    tmp_dir = vae_dir.with_name(vae_dir.name + ".ft_tmp")
    vae.save_pretrained(tmp_dir, safe_serialization=True)
    weights = "diffusion_pytorch_model.safetensors"
    os.replace(tmp_dir / weights, vae_dir / weights)  # atomic: a reader never sees half a file
    info = json.loads((vae_dir / "vae_results.json").read_text())
    info.update(
        {
            "decoder_ft_steps": step,
            "psnr_heldout_db": round(after, 2),
            "psnr_heldout_before_ft_db": round(before, 2),
        }
    )
    (vae_dir / "vae_results.json").write_text(json.dumps(info, indent=1) + "\n")
    logger.info("decoder fine-tune: held-out PSNR %.2f -> %.2f dB after %d steps", before, after, step)
    return info


N_VARIANTS = 4  # cached augmented variants per training image (variant 0 is the clean image)


@torch.no_grad()
def encode_cache(vae: AutoencoderKL, ds: ds_mod.Dataset, path: Path, seed: int = 0) -> dict:
    """Latent means (scaled by scaling_factor) of N_VARIANTS augmented copies of every training
    image: {"latents": [N, V, C, h, w] fp16, "index": dataset indices}. Held-out pairs are
    never encoded."""
    vae.eval()
    idx = ds.indices("train")
    rng = random.Random(seed)
    sf = vae.config.scaling_factor
    out = []
    t0 = time.time()
    for v in range(N_VARIANTS):
        imgs = (
            ds.images[idx]
            if v == 0
            else np.stack(
                [ds_mod.augment(ds.images[i], rng, ds.items[i].flip_ok, ds.items[i].jitter_ok) for i in idx]
            )
        )
        x = to_tensor(imgs)
        lat = torch.cat([vae.encode(x[s : s + 128]).latent_dist.mean for s in range(0, len(x), 128)])
        out.append((lat * sf).half())
        logger.info("encoded variant %d (%d images, %.0fs)", v, len(idx), time.time() - t0)
    cache = {"latents": torch.stack(out, dim=1), "index": torch.tensor(idx)}
    torch.save(cache, path)
    return cache


def load_vae(folder: Path) -> AutoencoderKL:
    return AutoencoderKL.from_pretrained(folder).eval()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=ds_mod.DEFAULT_DATA_DIR)
    parser.add_argument("--ckpt-dir", type=Path, default=DEFAULT_CKPT_DIR)
    parser.add_argument("--steps", type=int, default=VAETrainConfig.steps)
    parser.add_argument("--batch-size", type=int, default=VAETrainConfig.batch_size)
    parser.add_argument("--time-budget-min", type=float, default=30.0)
    parser.add_argument("--bench", action="store_true")
    parser.add_argument("--skip-train", action="store_true", help="only finalize + cache latents")
    parser.add_argument(
        "--finetune-decoder",
        action="store_true",
        help="only train the decoder of <ckpt-dir>/vae (latents unchanged)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if args.bench:
        for boc in [(32, 64, 64), (32, 64, 128), (64, 128, 128)]:
            vae = VAEConfig(block_out_channels=boc).build()
            opt = torch.optim.AdamW(vae.parameters())
            x = torch.randn(args.batch_size, 3, 64, 64)
            ts = []
            for _ in range(4):
                t0 = time.time()
                post = vae.encode(x).latent_dist
                vae.decode(post.sample()).sample.pow(2).mean().backward()
                opt.step()
                ts.append(time.time() - t0)
            with torch.no_grad():
                t0 = time.time()
                vae.decode(vae.encode(x[:1]).latent_dist.mean)
                t1 = time.time() - t0
            n = sum(p.numel() for p in vae.parameters()) / 1e6
            logger.info(
                "bench %s %.2fM: %.3f s/step (batch %d), enc+dec 1 img %.3fs",
                boc,
                n,
                np.mean(ts[1:]),
                args.batch_size,
                t1,
            )
        return
    ds = ds_mod.load(args.data_dir)
    if args.finetune_decoder:
        finetune_decoder(args.ckpt_dir / "vae", ds, args.steps, args.time_budget_min, args.batch_size)
        return
    cfg = VAETrainConfig(steps=args.steps, batch_size=args.batch_size)
    vae = cfg.model.build()
    if not args.skip_train:
        vae = train(cfg, ds, args.ckpt_dir, args.time_budget_min)
    else:
        vae.load_state_dict(torch.load(args.ckpt_dir / "vae_ckpt.pt", weights_only=False)["vae"])
    finalize(vae, ds, args.ckpt_dir / "vae")
    encode_cache(vae, ds, args.ckpt_dir / "latents.pt")


if __name__ == "__main__":
    main()
