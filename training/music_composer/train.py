"""Train the offline composer: a small GPT over REMI tokens of the music21 corpus.

    OMP_NUM_THREADS=1 python -m training.music_composer.train --cpu-budget-min 35

The budget is CPU time of this process (one thread), summed across resumes. The run resumes
automatically from --ckpt-dir (model, optimizer, step, RNG state, CPU seconds used, best val),
so the same command continues it in a later session; raise --cpu-budget-min to train longer.
Whenever the validation loss improves, the weights (fp16 safetensors) and config are exported
to --export-dir, which is what the app loads.

Each training example is `BOS Style_x Mode_y` + a window of one piece starting at a bar line
(pieces end with EOS), so the conditioning prefix is always in context, as at generation time.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from pipelines.music.network import Composer, ComposerConfig
from pipelines.music.tokens import make_tokenizer
from training.music_composer import dataset

log = logging.getLogger("music_composer.train")

DEFAULT_CKPT_DIR = dataset.CACHE_DIR
DEFAULT_EXPORT_DIR = Path(__file__).resolve().parents[2] / "assets" / "models" / "music-composer"
PREFIX_LEN = 3  # BOS Style Mode


@dataclass
class TrainConfig:
    seed: int = 1234  # torch / numpy / python RNG seed
    batch_size: int = 8  # windows per step
    lr: float = 1e-3  # peak AdamW learning rate
    min_lr: float = 1e-4  # end of the cosine decay
    warmup_steps: int = 100  # linear warmup
    max_steps: int = 3000  # length of the cosine schedule (the CPU budget usually ends first)
    weight_decay: float = 0.1  # AdamW, on matrices only
    grad_clip: float = 1.0  # global norm clip
    eval_every: int = 150  # steps between validation + checkpoint
    cpu_budget_min: float = 35.0  # CPU minutes of training, across resumes


# -- data ----------------------------------------------------------------------------------------


class Windows:
    """Random bar-aligned windows of the pieces in one split, conditioning prefix first."""

    def __init__(self, pieces: list[dataset.Piece], block_size: int, pad_id: int, eos_id: int, bar_id: int):
        self.seqs = [np.array([*p.ids, eos_id], dtype=np.int64) for p in pieces]
        self.block = block_size
        self.pad = pad_id
        # bar-line starts (after the prefix) of each piece
        self.starts = [np.flatnonzero(s[PREFIX_LEN:] == bar_id) + PREFIX_LEN for s in self.seqs]
        lengths = np.array([len(s) for s in self.seqs], dtype=np.float64)
        self.weights = lengths / lengths.sum()  # sample pieces by length: every token counts equally

    def window(self, index: int, start: int) -> tuple[np.ndarray, np.ndarray]:
        seq = self.seqs[index]
        body = seq[start : start + self.block + 1 - PREFIX_LEN]
        chunk = np.concatenate([seq[:PREFIX_LEN], body])
        x = np.full(self.block, self.pad, dtype=np.int64)
        y = np.full(self.block, -100, dtype=np.int64)
        x[: len(chunk) - 1] = chunk[:-1]
        y[: len(chunk) - 1] = chunk[1:]
        y[: PREFIX_LEN - 1] = -100  # the style/mode tokens are given, not predicted
        return x, y

    def batch(self, rng: np.random.Generator, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for index in rng.choice(len(self.seqs), size=size, p=self.weights):
            starts = self.starts[index]
            start = int(rng.choice(starts)) if len(starts) else PREFIX_LEN
            x, y = self.window(int(index), start)
            xs.append(x)
            ys.append(y)
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))

    def fixed_windows(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Consecutive non-overlapping windows covering every token once (for evaluation)."""
        out = []
        for index, seq in enumerate(self.seqs):
            start = PREFIX_LEN
            while start < len(seq) - 1:
                out.append(self.window(index, start))
                start += self.block - PREFIX_LEN
        return out


@torch.no_grad()
def evaluate(model: Composer, windows: Windows, batch_size: int = 16) -> float:
    """Mean per-token NLL (nats) over every predicted token of the split."""
    model.eval()
    total, count = 0.0, 0
    fixed = windows.fixed_windows()
    for i in range(0, len(fixed), batch_size):
        x = torch.from_numpy(np.stack([w[0] for w in fixed[i : i + batch_size]]))
        y = torch.from_numpy(np.stack([w[1] for w in fixed[i : i + batch_size]]))
        logits = model(x)
        nll = torch.nn.functional.cross_entropy(
            logits.view(-1, logits.size(-1)), y.view(-1), ignore_index=-100, reduction="sum"
        )
        total += float(nll)
        count += int((y != -100).sum())
    model.train()
    return total / max(count, 1)


# -- schedule, checkpoints, export ---------------------------------------------------------------


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


def make_optimizer(model: Composer, cfg: TrainConfig) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95))


def export(model: Composer, export_dir: Path, info: dict) -> None:
    """fp16 safetensors + config.json + the miditok tokenizer params: all the app needs."""
    from safetensors.torch import save_file

    export_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    state.pop("lm_head.weight", None)  # tied to wte.weight
    save_file(state, str(export_dir / "composer.safetensors"))
    (export_dir / "config.json").write_text(json.dumps({"model": model.config.to_dict(), **info}, indent=1))
    make_tokenizer().save(export_dir / "tokenizer.json")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ckpt-dir", type=Path, default=DEFAULT_CKPT_DIR)
    parser.add_argument("--export-dir", type=Path, default=DEFAULT_EXPORT_DIR)
    parser.add_argument("--cpu-budget-min", type=float, default=TrainConfig.cpu_budget_min)
    parser.add_argument("--max-steps", type=int, default=TrainConfig.max_steps)
    parser.add_argument("--n-layer", type=int, default=ComposerConfig.n_layer)
    parser.add_argument("--n-embd", type=int, default=ComposerConfig.n_embd)
    parser.add_argument("--block-size", type=int, default=ComposerConfig.block_size)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = TrainConfig(cpu_budget_min=args.cpu_budget_min, max_steps=args.max_steps)

    # 1. data (parsed once, cached)
    tokenizer = make_tokenizer()
    pieces = dataset.build(args.ckpt_dir)
    ids = dict(
        pad=tokenizer.vocab["PAD_None"], eos=tokenizer.vocab["EOS_None"], bar=tokenizer.vocab["Bar_None"]
    )
    mcfg = ComposerConfig(
        vocab_size=len(tokenizer), block_size=args.block_size, n_layer=args.n_layer, n_embd=args.n_embd
    )
    train = Windows(
        [p for p in pieces if p.split == "train"], mcfg.block_size, ids["pad"], ids["eos"], ids["bar"]
    )
    val = Windows(
        [p for p in pieces if p.split == "val"], mcfg.block_size, ids["pad"], ids["eos"], ids["bar"]
    )
    log.info(
        "train %d pieces / %d tokens; val %d pieces",
        len(train.seqs),
        sum(map(len, train.seqs)),
        len(val.seqs),
    )

    # 2. model + optimizer, resumed when a checkpoint exists
    ckpt_path = args.ckpt_dir / "ckpt.pt"
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = Composer(mcfg)
    optimizer = make_optimizer(model, cfg)
    step, cpu_used, best_val, history = 0, 0.0, float("inf"), []
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=False)
        model = Composer(ComposerConfig(**ckpt["model_config"]))
        optimizer = make_optimizer(model, cfg)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        step, cpu_used, best_val, history = ckpt["step"], ckpt["cpu_used"], ckpt["best_val"], ckpt["history"]
        rng.bit_generator.state = ckpt["numpy_rng"]
        torch.set_rng_state(ckpt["torch_rng"])
        log.info("resumed at step %d (%.1f CPU min used, best val %.4f)", step, cpu_used / 60, best_val)
    log.info("model %.2fM params, config %s", model.num_params() / 1e6, model.config)

    def save_checkpoint() -> None:
        state = {
            "model_config": model.config.to_dict(),
            "train_config": asdict(cfg),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "cpu_used": cpu_used,
            "best_val": best_val,
            "history": history,
            "numpy_rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
        }
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(ckpt_path)

    # 3. the loop: stop when the CPU budget (summed across resumes) is spent
    model.train()
    t_cpu, t_wall, losses = time.process_time(), time.perf_counter(), []
    budget_s = cfg.cpu_budget_min * 60
    while cpu_used + (time.process_time() - t_cpu) < budget_s and step < cfg.max_steps:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        x, y = train.batch(rng, cfg.batch_size)
        loss = model.loss(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        losses.append(float(loss))
        step += 1
        if step % 25 == 0:
            log.info(
                "step %d loss %.4f lr %.2e %.2f s/step cpu %.1f min",
                step,
                np.mean(losses[-25:]),
                lr_at(step, cfg),
                (time.perf_counter() - t_wall) / 25,
                (cpu_used + time.process_time() - t_cpu) / 60,
            )
            t_wall = time.perf_counter()
        if step % cfg.eval_every == 0:
            cpu_used += time.process_time() - t_cpu
            t_cpu = time.process_time()
            val_nll = evaluate(model, val)
            history.append(
                {
                    "step": step,
                    "train": float(np.mean(losses[-cfg.eval_every :])),
                    "val": val_nll,
                    "cpu_min": cpu_used / 60,
                }
            )
            log.info("step %d val nll %.4f (best %.4f)", step, val_nll, best_val)
            if val_nll < best_val:
                best_val = val_nll
                export(
                    model,
                    args.export_dir,
                    {"step": step, "val_nll": val_nll, "cpu_min": cpu_used / 60, "train": asdict(cfg)},
                )
            save_checkpoint()
    cpu_used += time.process_time() - t_cpu
    val_nll = evaluate(model, val)
    history.append(
        {
            "step": step,
            "train": float(np.mean(losses[-cfg.eval_every :] or [0])),
            "val": val_nll,
            "cpu_min": cpu_used / 60,
        }
    )
    if val_nll < best_val:
        best_val = val_nll
        export(
            model,
            args.export_dir,
            {"step": step, "val_nll": val_nll, "cpu_min": cpu_used / 60, "train": asdict(cfg)},
        )
    save_checkpoint()
    (args.ckpt_dir / "history.json").write_text(json.dumps(history, indent=1))
    log.info("done at step %d, %.1f CPU min, best val nll %.4f", step, cpu_used / 60, best_val)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    main()
