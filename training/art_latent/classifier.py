"""The judge: a small CNN trained on the REAL emoji images, used to score generated ones.

Three heads: subject (every base emoji), style (noto / twemoji / fluent flat / fluent color) and
category. It is trained on the training split with strong augmentation (shifts, flips where the
subject allows, colour jitter, blur, noise) so it stays usable on imperfect generated images.
The real images of the held-out (subject, style) pairs are NOT used for training: scoring them
gives the judge's own accuracy on unseen pairs, i.e. the ceiling a perfect generator could reach
on `subject_top5_heldout`. Its 192-d penultimate layer is the feature space of the FID-style
distance.

    OMP_NUM_THREADS=1 python -m training.art_latent.classifier --time-budget-min 25
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from training.art_latent import dataset as ds_mod

logger = logging.getLogger("art_latent.classifier")
DEFAULT_DIR = Path("/work/ckpt/art17/classifier")


@dataclass
class JudgeConfig:
    seed: int = 11
    batch_size: int = 64
    lr: float = 2e-3
    steps: int = 3000
    noise_max: float = 0.1
    blur_prob: float = 0.3
    widths: tuple[int, ...] = (24, 48, 96, 192)


class Judge(nn.Module):
    """[B, 3, 64, 64] in [-1, 1] -> {"subject", "style", "category": logits}."""

    def __init__(self, n_subjects: int, n_styles: int, n_categories: int, widths=(24, 48, 96, 192)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for i, w in enumerate(widths):
            for k in range(1 if i == 0 else 2):
                layers += [nn.Conv2d(cin if k == 0 else w, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU()]
            layers.append(nn.MaxPool2d(2))
            cin = w
        self.body = nn.Sequential(*layers)  # -> [B, w, 4, 4]
        self.neck = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(cin * 16, 192), nn.ReLU())
        self.heads = nn.ModuleDict(
            {
                "subject": nn.Linear(192, n_subjects),
                "style": nn.Linear(192, n_styles),
                "category": nn.Linear(192, n_categories),
            }
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.neck(self.body(x))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(x)
        return {k: h(f) for k, h in self.heads.items()}


@dataclass
class Labels:
    subjects: list[str]  # Subject.key per class
    styles: list[str]
    categories: list[str]

    def encode(self, item: ds_mod.Item) -> tuple[int, int, int]:
        return (
            self.subjects.index(item.subject),
            self.styles.index(item.style),
            self.categories.index(item.category),
        )


def labels_for(ds: ds_mod.Dataset) -> Labels:
    return Labels(sorted(ds.subjects), list(ds_mod.STYLES), list(ds_mod.CATEGORIES))


def to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


def _noise_blur(x: torch.Tensor, cfg: JudgeConfig, gen: torch.Generator) -> torch.Tensor:
    b = x.shape[0]
    blur = torch.rand(b, generator=gen) < cfg.blur_prob
    if blur.any():
        x[blur] = F.avg_pool2d(F.pad(x[blur], (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    x = x + torch.randn(x.shape, generator=gen) * torch.rand(b, 1, 1, 1, generator=gen) * cfg.noise_max
    return x.clamp(-1, 1)


@torch.no_grad()
def predict(model: Judge, x: torch.Tensor, batch: int = 256) -> tuple[dict[str, torch.Tensor], np.ndarray]:
    """(logits per head, features [N, 192])."""
    model.eval()
    outs: dict[str, list[torch.Tensor]] = {}
    feats = []
    for s in range(0, len(x), batch):
        f = model.features(x[s : s + batch])
        feats.append(f)
        for k, h in model.heads.items():
            outs.setdefault(k, []).append(h(f))
    return {k: torch.cat(v) for k, v in outs.items()}, torch.cat(feats).numpy()


def accuracy(logits: dict[str, torch.Tensor], y: torch.Tensor) -> dict[str, float]:
    top5 = logits["subject"].topk(5, dim=1).indices
    return {
        "subject_top1": float((logits["subject"].argmax(1) == y[:, 0]).float().mean()),
        "subject_top5": float((top5 == y[:, :1]).any(1).float().mean()),
        "style": float((logits["style"].argmax(1) == y[:, 1]).float().mean()),
        "category": float((logits["category"].argmax(1) == y[:, 2]).float().mean()),
    }


def train_judge(ds: ds_mod.Dataset, cfg: JudgeConfig, time_budget_min: float) -> tuple[Judge, Labels, dict]:
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    lab = labels_for(ds)
    tr = ds.indices("train", emoji_only=True)
    he = ds.indices("heldout", emoji_only=True)
    y_all = {i: lab.encode(ds.items[i]) for i in tr + he}
    model = Judge(len(lab.subjects), len(lab.styles), len(lab.categories), cfg.widths)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.05)
    t0 = time.time()
    step = 0
    while step < cfg.steps and time.time() - t0 < time_budget_min * 60:
        idx = rng.sample(tr, cfg.batch_size)
        imgs = np.stack(
            [ds_mod.augment(ds.images[i], rng, ds.items[i].flip_ok, ds.items[i].jitter_ok) for i in idx]
        )
        x = _noise_blur(to_tensor(imgs), cfg, gen)
        y = torch.tensor([y_all[i] for i in idx])
        lr = cfg.lr * 0.5 * (1 + np.cos(np.pi * step / cfg.steps)) * min(1.0, (step + 1) / 100)
        for g in opt.param_groups:
            g["lr"] = lr
        model.train()
        out = model(x)
        loss = (
            F.cross_entropy(out["subject"], y[:, 0], label_smoothing=0.1)
            + F.cross_entropy(out["style"], y[:, 1])
            + F.cross_entropy(out["category"], y[:, 2])
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 100 == 0:
            logger.info("judge step %d loss %.3f (%.0fs)", step, loss.item(), time.time() - t0)
    x_tr = to_tensor(ds.images[tr])
    y_tr = torch.tensor([y_all[i] for i in tr])
    x_he = to_tensor(ds.images[he])
    y_he = torch.tensor([y_all[i] for i in he])
    info = {
        "steps": step,
        "train_minutes": round((time.time() - t0) / 60, 1),
        "train_real": accuracy(predict(model, x_tr)[0], y_tr),
        "heldout_real": accuracy(predict(model, x_he)[0], y_he),
        "n_train": len(tr),
        "n_heldout": len(he),
        "config": asdict(cfg),
    }
    logger.info("judge: %s", info)
    return model, lab, info


def save_judge(model: Judge, lab: Labels, info: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out / "judge.safetensors")
    (out / "judge.json").write_text(json.dumps({"labels": asdict(lab), "info": info}, indent=1) + "\n")


def load_judge(out: Path = DEFAULT_DIR) -> tuple[Judge, Labels, dict]:
    meta = json.loads((out / "judge.json").read_text())
    lab = Labels(**meta["labels"])
    model = Judge(
        len(lab.subjects), len(lab.styles), len(lab.categories), tuple(meta["info"]["config"]["widths"])
    )
    model.load_state_dict(load_file(out / "judge.safetensors"))
    return model.eval(), lab, meta["info"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=ds_mod.DEFAULT_DATA_DIR)
    parser.add_argument("--out", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--steps", type=int, default=JudgeConfig.steps)
    parser.add_argument("--time-budget-min", type=float, default=30.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    ds = ds_mod.load(args.data_dir)
    model, lab, info = train_judge(ds, JudgeConfig(steps=args.steps), args.time_budget_min)
    save_judge(model, lab, info, args.out)


if __name__ == "__main__":
    main()
