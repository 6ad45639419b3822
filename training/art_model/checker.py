"""Adherence checker: a small CNN trained on the generator's ground truth.

It reads a 32x32 image and predicts the scene attributes (colour, shape, layout, background).
Trained on renders of ALL colour/shape combinations (it is the judge, not the model under
test), with noise/blur/colour jitter so it stays reliable on imperfect generated images.
Its penultimate layer (128-d) is also the feature space of the FID-style distance.

    OMP_NUM_THREADS=1 python -m training.art_model.checker     # trains and saves it (~2 min)
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from training.art_model import dataset

logger = logging.getLogger("art_model.checker")

CHECKER_DIR = Path(__file__).resolve().parents[2] / "assets" / "models" / "art-offline-checker"
HEADS = {  # attribute -> number of classes
    "colour": len(dataset.COLOURS),
    "shape": len(dataset.SHAPES),
    "layout": len(dataset.LAYOUTS),
    "background": len(dataset.BACKGROUNDS),
}


@dataclass
class CheckerConfig:
    seed: int = 7  # data and init seed (independent of the diffusion model's)
    n_train: int = 24_000  # rendered training images
    n_val: int = 2_000  # rendered validation images (clean)
    epochs: int = 3  # passes over n_train
    batch_size: int = 128  # images per step
    lr: float = 2e-3  # AdamW learning rate (cosine decay to 0)
    noise_max: float = 0.12  # max std of added Gaussian noise (in [-1, 1] units)
    blur_prob: float = 0.3  # probability of a 3x3 box blur


class Checker(nn.Module):
    """[B, 3, 32, 32] in [-1, 1] -> {attribute: logits}; `features()` gives the 128-d embedding."""

    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int, convs: int) -> nn.Sequential:
            layers: list[nn.Module] = []
            for k in range(convs):
                layers += [
                    nn.Conv2d(cin if k == 0 else cout, cout, 3, padding=1),
                    nn.BatchNorm2d(cout),
                    nn.ReLU(),
                ]
            return nn.Sequential(*layers, nn.MaxPool2d(2))

        # small on purpose: ~15 MFLOP per image, so it trains in minutes on one shared core
        self.body = nn.Sequential(block(3, 16, 1), block(16, 32, 2), block(32, 64, 2))  # -> [B, 64, 4, 4]
        self.neck = nn.Sequential(nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU())  # keeps where things are
        self.heads = nn.ModuleDict({name: nn.Linear(128, n) for name, n in HEADS.items()})

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.neck(self.body(x))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(x)
        return {name: head(f) for name, head in self.heads.items()}


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """[B, 32, 32, 3] uint8 -> [B, 3, 32, 32] float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


def _augment(x: torch.Tensor, cfg: CheckerConfig, gen: torch.Generator) -> torch.Tensor:
    b = x.shape[0]
    # per-image brightness/contrast-ish jitter and per-channel shift (generated colours drift a little)
    x = x * (1 + 0.1 * (torch.rand(b, 1, 1, 1, generator=gen) - 0.5)) + 0.06 * (
        torch.rand(b, 3, 1, 1, generator=gen) - 0.5
    )
    blur = torch.rand(b, generator=gen) < cfg.blur_prob
    if blur.any():
        x[blur] = F.avg_pool2d(F.pad(x[blur], (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    x = x + torch.randn(x.shape, generator=gen) * torch.rand(b, 1, 1, 1, generator=gen) * cfg.noise_max
    return x.clamp(-1, 1)


def _render_set(rng: random.Random, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    combos = tuple(itertools.product(dataset.COLOURS, dataset.SHAPES))
    images, scenes = dataset.render_batch(rng, n, combos)
    return to_tensor(images), torch.tensor([dataset.labels(s) for s in scenes])  # [n, 4]


def train_checker(cfg: CheckerConfig) -> tuple[Checker, dict[str, float]]:
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    t0 = time.time()
    x_train, y_train = _render_set(rng, cfg.n_train)
    x_val, y_val = _render_set(rng, cfg.n_val)
    logger.info("rendered %d + %d images in %.1fs", cfg.n_train, cfg.n_val, time.time() - t0)

    model = Checker()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    steps = cfg.epochs * (cfg.n_train // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.1)
    step = 0
    for epoch in range(cfg.epochs):
        model.train()
        perm = torch.randperm(cfg.n_train, generator=gen)
        for i in range(cfg.n_train // cfg.batch_size):
            idx = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            logits = model(_augment(x_train[idx].clone(), cfg, gen))
            # one cross-entropy per attribute, summed
            loss = sum(F.cross_entropy(logits[name], y_train[idx, k]) for k, name in enumerate(HEADS))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
        acc = evaluate_checker(model, x_val, y_val)
        logger.info("epoch %d loss %.3f val %s (%.0fs)", epoch, loss.item(), acc, time.time() - t0)
    return model.eval(), acc


@torch.no_grad()
def evaluate_checker(model: Checker, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    model.eval()
    preds = predict(model, x)
    return {name: float((preds[name] == y[:, k]).float().mean()) for k, name in enumerate(HEADS)}


@torch.no_grad()
def predict(model: Checker, x: torch.Tensor, batch_size: int = 512) -> dict[str, torch.Tensor]:
    """Class index per attribute for images in [-1, 1]."""
    out: dict[str, list[torch.Tensor]] = {name: [] for name in HEADS}
    for start in range(0, len(x), batch_size):
        logits = model(x[start : start + batch_size])
        for name in HEADS:
            out[name].append(logits[name].argmax(-1))
    return {name: torch.cat(v) for name, v in out.items()}


@torch.no_grad()
def features(model: Checker, x: torch.Tensor, batch_size: int = 512) -> np.ndarray:
    return torch.cat([model.features(x[s : s + batch_size]) for s in range(0, len(x), batch_size)]).numpy()


def save_checker(
    model: Checker, cfg: CheckerConfig, val_acc: dict[str, float], out: Path = CHECKER_DIR
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out / "checker.safetensors")
    (out / "checker.json").write_text(
        json.dumps({"config": asdict(cfg), "val_accuracy": val_acc}, indent=2) + "\n"
    )


def load_checker(path: Path = CHECKER_DIR) -> Checker:
    model = Checker()
    model.load_state_dict(load_file(path / "checker.safetensors"))
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=CHECKER_DIR)
    parser.add_argument("--epochs", type=int, default=CheckerConfig.epochs)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    torch.set_num_threads(1)
    cfg = CheckerConfig(epochs=args.epochs)
    model, acc = train_checker(cfg)
    save_checker(model, cfg, acc, args.out)
    logger.info("saved checker to %s (validation accuracy %s)", args.out, acc)


if __name__ == "__main__":
    main()
