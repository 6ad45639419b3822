"""Offline art model v2 (training/art_latent): captions, the held-out split, augmentation, resume,
and a tiny autoencoder + UNet round trip. Tiny configs and synthetic images: fast, no npm data."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from training.art_latent import autoencoder as ae
from training.art_latent import dataset as ds_mod


def _subject(key: str, name: str, category: str = "Food & Drink", sub: str = "food-fruit", short=None):
    return ds_mod.Subject(key, name, short or [key.replace("_", " ")], category, sub)


def test_captions_name_subject_category_and_style() -> None:
    apple = _subject("apple", "red apple")
    caps = ds_mod.captions(apple, "twemoji")
    assert caps[0] == "a red apple, food and drink, flat twemoji style"
    assert ds_mod.canonical_caption(apple, "twemoji") == caps[0]
    assert all("red apple" in c or "apple" in c for c in caps)
    assert any("twemoji" in c for c in caps[1:])  # paraphrased style phrases
    assert "red apple" in caps  # a style-free caption, so short prompts work too
    egg = ds_mod.captions(_subject("egg", "egg"), "noto")
    assert egg[0].startswith("an egg, ")
    # every style has distinct phrases, and shapes keep v1's captions with the style appended
    assert len({p for s in ds_mod.STYLE_PHRASES.values() for p in s}) == 3 * len(ds_mod.STYLE_PHRASES)
    scene = ds_mod.shapes.Scene("red", "circle", "center", "sky")
    assert ds_mod.shapes_captions(scene)[0].endswith("pixel art style")


def test_flip_and_colour_rules() -> None:
    assert _subject("apple", "red apple").names_colour
    assert not _subject("pear", "pear").names_colour
    assert _subject("flag-fr", "france flag", "Flags", "country-flag").names_colour  # flags keep colours
    assert _subject("pear", "pear").flip_ok
    assert not _subject("flag-fr", "france flag", "Flags", "country-flag").flip_ok
    assert not _subject("arrow_left", "leftwards black arrow", "Symbols", "arrow").flip_ok
    assert not _subject("point_left", "white left pointing backhand index", "People & Body", "hand").flip_ok
    assert not _subject("a", "negative squared latin capital letter a", "Symbols", "alphanum").flip_ok


def test_heldout_pairs_are_fixed_and_valid() -> None:
    pairs = ds_mod.heldout_pairs()
    assert len(pairs) >= 50
    assert all(style in ds_mod.STYLES for _, style in pairs)
    assert len({s for s, _ in pairs}) == len(pairs)  # one held-out style per subject
    subjects = [_subject(f"s{i}", f"thing {i}") for i in range(400)]
    for s in subjects:
        s.files = {"noto": "a", "twemoji": "b"}
    first = ds_mod.make_heldout(subjects)
    assert first == ds_mod.make_heldout(subjects)  # deterministic
    assert 0 < len(first) < 400 // 4


def test_augment_keeps_size_and_white_background() -> None:
    img = np.full((64, 64, 3), 255, np.uint8)
    img[20:44, 20:44] = (200, 30, 30)
    rng = random.Random(0)
    for _ in range(20):
        out = ds_mod.augment(img, rng, flip_ok=True, jitter_ok=True)
        assert out.shape == img.shape and out.dtype == np.uint8
        assert (out[0, 0] == 255).all()  # shifts fill with white, jitter keeps white white
    # no colour jitter when the caption names a colour: the red stays exactly red
    for _ in range(20):
        out = ds_mod.augment(img, rng, flip_ok=False, jitter_ok=False)
        assert {tuple(p) for p in out.reshape(-1, 3)} <= {(255, 255, 255), (200, 30, 30)}


def _tiny_dataset() -> ds_mod.Dataset:
    """6 subjects x 2 styles of coloured squares; subject s0 in twemoji is a held-out pair."""
    rng = np.random.default_rng(0)
    subjects = {f"s{i}": _subject(f"s{i}", f"thing {i}") for i in range(6)}
    images, items = [], []
    for key, subj in subjects.items():
        for style in ("noto", "twemoji"):
            img = np.full((64, 64, 3), 255, np.uint8)
            img[16:48, 16:48] = rng.integers(0, 255, 3)
            images.append(img)
            split = "heldout" if (key, style) == ("s0", "twemoji") else "train"
            items.append(
                ds_mod.Item(key, style, subj.category, ds_mod.captions(subj, style), split, True, True)
            )
    return ds_mod.Dataset(np.stack(images), items, subjects)


def _tiny_vae():
    torch.manual_seed(0)
    return ae.VAEConfig(block_out_channels=(8, 16, 16), norm_num_groups=4).build()


def test_heldout_pairs_never_reach_training(tmp_path: Path) -> None:
    ds = _tiny_dataset()
    held = ds.indices("heldout")
    assert held == [1]
    assert 1 not in ds.indices("train")
    held_caption = ds.items[1].captions[0]
    assert held_caption not in ds_mod.all_captions(ds)  # its canonical caption is never encoded
    cache = ae.encode_cache(_tiny_vae(), ds, tmp_path / "latents.pt")
    assert 1 not in cache["index"].tolist()
    assert cache["latents"].shape == (len(ds.items) - 1, ae.N_VARIANTS, 4, 16, 16)
    assert torch.load(tmp_path / "latents.pt")["index"].tolist() == cache["index"].tolist()


def test_autoencoder_trains_and_resumes(tmp_path: Path) -> None:
    ds = _tiny_dataset()
    cfg = ae.VAETrainConfig(
        batch_size=4, steps=3, model=ae.VAEConfig(block_out_channels=(8, 16, 16), norm_num_groups=4)
    )
    ae.train(cfg, ds, tmp_path, time_budget_min=5)
    assert torch.load(tmp_path / "vae_ckpt.pt", weights_only=False)["step"] == 3
    cfg.steps = 5
    vae = ae.train(cfg, ds, tmp_path, time_budget_min=5)
    ck = torch.load(tmp_path / "vae_ckpt.pt", weights_only=False)
    assert ck["step"] == 5
    assert all(s["step"].item() == 5 for s in ck["opt"]["state"].values())  # AdamW state carried over
    info = ae.finalize(vae, ds, tmp_path / "vae")
    assert info["scaling_factor"] > 0 and (tmp_path / "vae" / "diffusion_pytorch_model.safetensors").exists()
    assert ae.load_vae(tmp_path / "vae").config.scaling_factor == pytest.approx(
        info["scaling_factor"], rel=1e-3
    )


def test_unet_training_resumes_and_exports_a_loadable_pipeline(tmp_path: Path) -> None:
    from pipelines.art.latent_diffusion import LatentArtPipeline
    from training.art_latent import train_unet as tu

    ds = _tiny_dataset()
    vae = _tiny_vae()
    ae.finalize(vae, ds, tmp_path / "vae")
    ae.encode_cache(vae, ds, tmp_path / "latents.pt")
    tiny = tu.UNetConfig(
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=8,
        norm_num_groups=4,
    )
    cfg = tu.TrainConfig(batch_size=4, max_steps=3, warmup_steps=2, log_every=1, model=tiny)
    state = tu.train(cfg, ds, tmp_path, tmp_path / "latents.pt", tmp_path / "export")
    assert state.step == 3
    first = torch.load(tmp_path / "unet_ckpt.pt", weights_only=False)
    cfg.max_steps = 5
    state = tu.train(cfg, ds, tmp_path, tmp_path / "latents.pt", tmp_path / "export")
    ck = torch.load(tmp_path / "unet_ckpt.pt", weights_only=False)
    assert state.step == 5 and ck["state"]["step"] == 5 and ck["state"]["samples_seen"] == 20
    assert all(s["step"].item() == 5 for s in ck["opt"]["state"].values())  # AdamW moments carried on
    assert ck["py_rng"] != first["py_rng"]  # the data order continued rather than restarting
    pipe = LatentArtPipeline.from_pretrained(tmp_path / "export")
    pipe.set_progress_bar_config(disable=True)
    image = pipe("thing 1 emoji", num_inference_steps=2, generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (64, 64)
    assert (tmp_path / "export" / "vae" / "diffusion_pytorch_model.safetensors").exists()


def test_decoder_finetune_keeps_the_latent_space(tmp_path: Path) -> None:
    ds = _tiny_dataset()
    vae = _tiny_vae()
    ae.finalize(vae, ds, tmp_path / "vae")
    x = ae.to_tensor(ds.images[:4])
    with torch.no_grad():
        before = ae.load_vae(tmp_path / "vae").encode(x).latent_dist.mean
    info = ae.finetune_decoder(tmp_path / "vae", ds, steps=3, time_budget_min=5, batch_size=4)
    tuned = ae.load_vae(tmp_path / "vae")
    with torch.no_grad():
        after = tuned.encode(x).latent_dist.mean
    assert torch.equal(before, after)  # the encoder is frozen: cached latents and the UNet stay valid
    assert info["decoder_ft_steps"] == 3
    assert tuned.config.scaling_factor == pytest.approx(vae.config.scaling_factor)
    ae.finetune_decoder(tmp_path / "vae", ds, steps=5, time_budget_min=5, batch_size=4)  # resumes
    assert torch.load(tmp_path / "vae" / "decoder_ft.pt", weights_only=False)["step"] == 5
