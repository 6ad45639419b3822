"""The training loop both offline art models share: v-prediction, min-SNR weighting, EMA, resumable.

Each model brings its own batches (`next_batch(rng, n) -> (x0, cond)`: pixels for v1, VAE latents
for v2), its noise schedule and its export; this module runs the steps, the learning-rate
warm-up, the EMA (warmed up so early exports are not dominated by the init), the log lines, the
EMA snapshots, the atomic checkpoints and the periodic exports. A checkpoint holds the weights,
the EMA, the optimizer, the step counters and both random generators, so a resumed run continues
the same data order.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler

Batch = Callable[[random.Random, int], tuple[torch.Tensor, torch.Tensor]]  # (rng, n) -> (x0, cond)
Export = Callable[[dict[str, torch.Tensor], int], None]  # (ema weights, step)


@dataclass
class State:
    step: int = 0  # optimizer steps done
    elapsed_s: float = 0.0  # training seconds over all sessions
    samples_seen: int = 0  # images over all sessions


def ema_update(ema: dict[str, torch.Tensor], model: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for name, p in model.state_dict().items():
            if p.dtype.is_floating_point:
                ema[name].mul_(decay).add_(p.detach(), alpha=1 - decay)
            else:
                ema[name].copy_(p)


def save_checkpoint(
    path: Path, unet, ema, opt, state: State, rng: random.Random, gen: torch.Generator, cfg
) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "unet": unet.state_dict(),
            "ema": ema,
            "opt": opt.state_dict(),
            "state": dataclasses.asdict(state),
            "py_rng": rng.getstate(),
            "torch_rng": gen.get_state(),
            "config": dataclasses.asdict(cfg),
        },
        tmp,
    )
    os.replace(tmp, path)  # atomic: a kill mid-write never corrupts the last good checkpoint
    logging.getLogger(__name__).info("checkpoint step %d -> %s", state.step, path)


def train_v_prediction(
    cfg: Any,
    schedule: Any,
    next_batch: Batch,
    ckpt_path: Path,
    export: Export | None,
    log: logging.Logger,
) -> State:
    """Train `cfg.model.build()` until `cfg.max_steps` or the time budget; resume from `ckpt_path`.

    `cfg` has the fields of the models' TrainConfig (seed, batch_size, lr, warmup_steps, weight_decay,
    grad_clip, min_snr_gamma, ema_decay, num_train_timesteps, max_steps, time_budget_min, log_every,
    ckpt_every_min, export_every_min, snapshot_every, model); `schedule` is the sampler's scheduler,
    whose betas the training noise uses.
    """
    torch.manual_seed(cfg.seed)
    unet = cfg.model.build()
    log.info("UNet: %.2fM parameters, %s", sum(p.numel() for p in unet.parameters()) / 1e6, cfg.model)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    ema = {k: v.detach().clone() for k, v in unet.state_dict().items()}
    state = State()
    rng = random.Random(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, weights_only=False)
        unet.load_state_dict(ck["unet"])
        ema = ck["ema"]
        opt.load_state_dict(ck["opt"])
        state = State(**ck["state"])
        rng.setstate(ck["py_rng"])
        gen.set_state(ck["torch_rng"])
        log.info("resumed from %s at step %d (%.1f min trained)", ckpt_path, state.step, state.elapsed_s / 60)

    # the training noise schedule has the sampler's betas; min-SNR-gamma weight for v-prediction
    sched = DDPMScheduler.from_config(schedule.config)
    snr = sched.alphas_cumprod / (1 - sched.alphas_cumprod).clamp(min=1e-8)
    loss_weight = torch.minimum(snr, torch.tensor(cfg.min_snr_gamma)) / (snr + 1)

    unet.train()
    start = last_ckpt = last_export = time.time()
    window_loss, window_t = 0.0, time.time()
    deadline = start + cfg.time_budget_min * 60
    while state.step < cfg.max_steps and time.time() < deadline:
        # 1. a batch, then forward diffusion: x_t = sqrt(a) x0 + sqrt(1-a) eps, target v
        x0, cond = next_batch(rng, cfg.batch_size)
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, cfg.num_train_timesteps, (cfg.batch_size,), generator=gen)
        x_t = sched.add_noise(x0, noise, t)
        target = sched.get_velocity(x0, noise, t)

        # 2. predict v and take a min-SNR-weighted MSE step with a linear LR warm-up
        pred = unet(x_t, t, encoder_hidden_states=cond, return_dict=False)[0]
        loss = (F.mse_loss(pred, target, reduction="none").mean(dim=(1, 2, 3)) * loss_weight[t]).mean()
        lr = cfg.lr * min(1.0, (state.step + 1) / cfg.warmup_steps)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), cfg.grad_clip)
        opt.step()

        # 3. EMA of the weights, warmed up as (1+step)/(10+step)
        state.step += 1
        state.samples_seen += cfg.batch_size
        ema_update(ema, unet, min(cfg.ema_decay, (1 + state.step) / (10 + state.step)))

        # 4. log, snapshot, checkpoint and export on their own cadences
        window_loss += loss.item()
        if state.step % cfg.log_every == 0:
            log.info(
                "step %d loss %.4f lr %.2e %.3f s/step (%.1f min total)",
                state.step,
                window_loss / cfg.log_every,
                lr,
                (time.time() - window_t) / cfg.log_every,
                (state.elapsed_s + time.time() - start) / 60,
            )
            window_loss, window_t = 0.0, time.time()
        if state.step % cfg.snapshot_every == 0:
            torch.save(ema, ckpt_path.parent / f"ema_step{state.step:07d}.pt")
        now = time.time()
        if now - last_ckpt > cfg.ckpt_every_min * 60:
            save_checkpoint(ckpt_path, unet, ema, opt, _elapsed(state, start), rng, gen, cfg)
            last_ckpt = now
        if export is not None and now - last_export > cfg.export_every_min * 60:
            try:  # an export problem (e.g. a folder being rewritten) must never stop training
                export(ema, state.step)
            except Exception:
                log.exception("export failed at step %d; training goes on", state.step)
            last_export = now

    final = _elapsed(state, start)
    save_checkpoint(ckpt_path, unet, ema, opt, final, rng, gen, cfg)
    if export is not None:
        export(ema, final.step)
    return final


def _elapsed(state: State, start: float) -> State:
    """A copy of the state with this session's time added (the live one keeps counting from start)."""
    return dataclasses.replace(state, elapsed_s=state.elapsed_s + time.time() - start)
