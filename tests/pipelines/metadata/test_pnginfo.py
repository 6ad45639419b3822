"""PNG Info reads our own files and the A1111, ComfyUI, Fooocus and NovelAI formats (built here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from pipelines.metadata import GenerationParameters, match_sampler, read_png_info, save_png
from studio.events import UserError


def _png(path: Path, chunks: dict[str, str], size: tuple[int, int] = (64, 48)) -> Path:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    Image.new("RGB", size, (200, 30, 30)).save(path, pnginfo=info)
    return path


def test_reads_a_file_written_by_this_app(tmp_path: Path) -> None:
    # the exact infotext ArtPipeline writes, with a model label holding a colon and commas
    params = GenerationParameters(
        "a red circle, in a blue sky",
        "blurry",
        {
            "Steps": 25,
            "Sampler": "DPM++ 2M Karras",
            "CFG scale": 2.5,
            "Seed": 1234,
            "Size": "256x256",
            "Model": "Debug: tiny random SD (makes noise, proves the plumbing)",
            "Version": "creative-studio",
        },
    )
    path = tmp_path / "ours.png"
    save_png(Image.new("RGB", (256, 256)), path, params)
    info = read_png_info(path)
    assert info.found and info.generator == "Creative Studio"
    assert (info.prompt, info.negative_prompt) == ("a red circle, in a blue sky", "blurry")
    assert (info.steps, info.cfg_scale, info.seed) == (25, 2.5, 1234)
    assert (info.sampler, info.art_sampler) == ("DPM++ 2M Karras", "DPM++ 2M Karras")
    assert (info.width, info.height) == (256, 256)
    assert info.model == "Debug: tiny random SD (makes noise, proves the plumbing)"
    assert "Steps: 25" in info.to_text() and "blurry" in info.to_text()


def test_reads_automatic1111_parameters(tmp_path: Path) -> None:
    text = (
        "masterpiece, a castle on a hill, oil painting\n"
        "Negative prompt: lowres, bad anatomy\n"
        "Steps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 3141592653, "
        "Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Clip skip: 2, Version: v1.10.1"
    )
    info = read_png_info(_png(tmp_path / "a1111.png", {"parameters": text}))
    assert info.generator == "AUTOMATIC1111"
    assert info.prompt == "masterpiece, a castle on a hill, oil painting"
    assert info.negative_prompt == "lowres, bad anatomy"
    assert (info.steps, info.cfg_scale, info.seed) == (30, 6.5, 3141592653)
    assert (info.width, info.height) == (512, 768)  # the generation size, not the 64x48 pixels
    assert info.art_sampler == "DPM++ 2M Karras"  # sampler + "Schedule type: Karras"
    assert info.model == "v1-5-pruned-emaonly"
    assert info.settings["Clip skip"] == "2"


def comfy_chunks(seed: int = 42) -> dict[str, str]:
    """A minimal ComfyUI txt2img graph: checkpoint -> 2 prompts -> empty latent -> KSampler."""
    prompt = {
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": seed,
                "steps": 20,
                "cfg": 8.0,
                "sampler_name": "euler_ancestral",
                "scheduler": "normal",
                "denoise": 1.0,
                "model": ["4", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
        },
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 832, "height": 1216, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox in the snow", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "watermark", "clip": ["4", 1]}},
    }
    # workflow links: [link id, from node, from slot, to node, to slot, type]
    links = [
        [1, 4, 0, 3, 0, "MODEL"],
        [2, 6, 0, 3, 1, "CONDITIONING"],
        [3, 7, 0, 3, 2, "CONDITIONING"],
        [4, 5, 0, 3, 3, "LATENT"],
        [5, 4, 1, 6, 0, "CLIP"],
        [6, 4, 1, 7, 0, "CLIP"],
    ]
    workflow = {"last_node_id": 7, "last_link_id": 6, "nodes": [], "links": links, "version": 0.4}
    return {"prompt": json.dumps(prompt), "workflow": json.dumps(workflow)}


def test_reads_comfyui_prompt_and_workflow(tmp_path: Path) -> None:
    info = read_png_info(_png(tmp_path / "comfy.png", comfy_chunks()))
    assert info.generator == "ComfyUI"
    assert (info.prompt, info.negative_prompt) == ("a fox in the snow", "watermark")
    assert (info.steps, info.cfg_scale, info.seed) == (20, 8.0, 42)
    assert (info.sampler, info.art_sampler) == ("euler_ancestral", "Euler a")
    assert (info.width, info.height) == (832, 1216)
    assert info.model == "sd_xl_base_1.0.safetensors"
    assert "workflow" in info.raw


def test_reads_fooocus_and_novelai(tmp_path: Path) -> None:
    fooocus = {
        "prompt": "a cozy cabin",
        "negative_prompt": "ugly",
        "styles": "['Fooocus V2', 'Fooocus Enhance']",
        "steps": 30,
        "guidance_scale": 4,
        "seed": 77,
        "sampler": "dpmpp_2m_sde_gpu",
        "scheduler": "karras",
        "base_model": "juggernautXL_v8Rundiffusion",
        "base_model_hash": "aeb7e9e689",
        "resolution": "(1152, 896)",
        "sharpness": 2,
    }
    info = read_png_info(
        _png(tmp_path / "fooocus.png", {"parameters": json.dumps(fooocus), "fooocus_scheme": "fooocus"})
    )
    assert info.generator == "Fooocus"
    assert (info.prompt, info.negative_prompt, info.steps, info.cfg_scale, info.seed) == (
        "a cozy cabin",
        "ugly",
        30,
        4.0,
        77,
    )
    assert (info.width, info.height) == (1152, 896)
    assert info.model == "juggernautXL_v8Rundiffusion"

    comment = {"steps": 28, "sampler": "k_euler_ancestral", "seed": 9, "scale": 11, "uc": "lowres"}
    novel = {
        "Description": "1girl, red scarf",
        "Software": "NovelAI",
        "Source": "Stable Diffusion 1D44365E",
        "Comment": json.dumps(comment),
    }
    info = read_png_info(_png(tmp_path / "nai.png", novel))
    assert info.generator == "NovelAI"
    assert (info.prompt, info.negative_prompt, info.cfg_scale, info.seed) == (
        "1girl, red scarf",
        "lowres",
        11.0,
        9,
    )
    assert info.art_sampler == "Euler a"


def test_no_metadata_says_so(tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    Image.new("RGB", (10, 10)).save(path)
    info = read_png_info(path)
    assert not info.found and info.image_size == (10, 10)
    assert info.to_text() == "No generation parameters found in this image."


def test_bad_files_get_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match="empty"):
        read_png_info(empty)
    good = tmp_path / "good.png"
    Image.new("RGB", (32, 32)).save(good)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(good.read_bytes()[:60])  # header and a cut IHDR/IDAT
    with pytest.raises(UserError, match="could not be read as an image"):
        read_png_info(corrupt)
    with pytest.raises(UserError, match="could not be read as an image"):
        read_png_info(b"this is not a picture")


@pytest.mark.parametrize(
    ("name", "scheduler", "expected"),
    [
        ("DDIM", "", "DDIM"),
        ("dpmpp_2m", "karras", "DPM++ 2M Karras"),
        ("uni_pc", "", "UniPC"),
        ("heun", "", None),
    ],
)
def test_match_sampler(name: str, scheduler: str, expected: str | None) -> None:
    assert match_sampler(name, scheduler) == expected


def test_reads_a1111_jpeg_user_comment(tmp_path: Path) -> None:
    """A1111 JPEG/WebP files carry the same text in EXIF UserComment (UTF-16 with a UNICODE prefix)."""
    text = "a jpeg fox\nNegative prompt: ugly\nSteps: 9, Sampler: Euler, CFG scale: 3, Seed: 5, Size: 64x64"
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + text.encode("utf-16-be")  # Exif IFD -> UserComment
    path = tmp_path / "a1111.jpg"
    Image.new("RGB", (64, 64)).save(path, exif=exif)
    info = read_png_info(path)
    assert (info.generator, info.prompt, info.negative_prompt) == ("AUTOMATIC1111", "a jpeg fox", "ugly")
    assert (info.steps, info.cfg_scale, info.seed, info.art_sampler) == (9, 3.0, 5, "Euler")
    assert info.raw == {}  # the binary EXIF blob is not shown as text
