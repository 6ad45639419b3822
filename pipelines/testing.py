"""Tiny random models built from configs: the "debug" registry entries and the test fixtures.

They run real diffusers/transformers code paths (the same classes as the big checkpoints) in
milliseconds, the way diffusers' own tests use `get_dummy_components`. Weights are random with a
fixed seed, so outputs are deterministic noise: they prove plumbing, not quality.

- art: a tiny Stable Diffusion (UNet2DConditionModel, AutoencoderKL, CLIP text encoder);
- writing: a 2-layer GPT-2 with a byte-level BPE trained by `tokenizers` on built-in sentences;
- music: a ~0.1M-parameter MusicGen (T5 text encoder, EnCodec, decoder);
- video: AnimateDiff (the tiny SD + a 2-block motion adapter) and text-to-video-ms (a tiny UNet3D);
- offline art v2: a tiny AutoencoderKL + text-conditioned UNet shaped like the project's latent model.

Only tests and the debug registry entries import this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tokenizers import pre_tokenizers


def tiny_clip_tokenizer():
    """A CLIPTokenizer over the 256 byte-level symbols, no merges; built offline."""
    from transformers import CLIPTokenizer

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for symbol in alphabet:
        vocab[symbol] = len(vocab)
        vocab[symbol + "</w>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def tiny_sd_components(seed: int = 0) -> dict:
    """UNet/VAE/CLIP small enough to run a 25-step 64x64 generation in well under a second."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=4,
    )
    vae = AutoencoderKL(
        block_out_channels=[8, 16],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        norm_num_groups=4,
        sample_size=64,
    )
    tokenizer = tiny_clip_tokenizer()
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            hidden_size=32,
            intermediate_size=37,
            layer_norm_eps=1e-05,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=len(tokenizer),
            max_position_embeddings=77,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return {
        "unet": unet,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "scheduler": scheduler,
        "safety_checker": None,
        "feature_extractor": None,
        "image_encoder": None,
        "requires_safety_checker": False,
    }


def tiny_latent_art_components(seed: int = 0) -> tuple[Any, Any]:
    """A random AutoencoderKL (64 px -> 16x16x4) and a text-conditioned UNet shaped like the offline v2 model."""
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(8, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=64,
        mid_block_add_attention=False,
    )
    return vae, tiny_minilm_unet(channels=4)


def tiny_minilm_unet(channels: int, sample_size: int = 16, seed: int | None = None) -> Any:
    """A 2-block UNet conditioned on MiniLM token states (384-d), like the project's offline art models."""
    from diffusers import UNet2DConditionModel

    if seed is not None:
        torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=384,
        attention_head_dim=8,
        norm_num_groups=4,
        addition_embed_type="text",
        addition_embed_type_num_heads=8,
    )


def save_tiny_sd(folder: Path, seed: int = 0) -> Path:
    """Write a tiny StableDiffusionPipeline to `folder` (once) in the ordinary save_pretrained layout."""
    from diffusers import StableDiffusionPipeline

    folder = Path(folder)
    if not (folder / "model_index.json").exists():
        StableDiffusionPipeline(**tiny_sd_components(seed)).save_pretrained(folder)
    return folder


# -- writing: GPT-2 ------------------------------------------------------------------------------

EOS = "<|endoftext|>"
CORPUS = [
    "Once upon a time, in a quiet village by the sea, there lived a lighthouse keeper.",
    "The dragon slept beneath the mountain, dreaming of gold and of the stars.",
    "Write a short story about a robot who learns to paint.",
    "Roses are red, violets are blue, the morning is bright and the sky is new.",
    "An article explains a topic in clear sections: introduction, body and conclusion.",
    "Rewrite the following text in a formal, friendly, humorous or poetic tone.",
    "Brainstorm ten catchy titles for a blog post about gardening in small spaces.",
    "Continue the text below. Keep the voice, the tense and the characters.",
    "Haiku: an old silent pond, a frog jumps into the pond, splash! silence again.",
    "1. Introduction 2. History 3. How it works 4. Examples 5. Conclusion",
]


def train_tiny_tokenizer(vocab_size: int = 400) -> Any:
    """A byte-level BPE PreTrainedTokenizerFast trained on CORPUS (no chat template)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodes: no unknown tokens
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=EOS,
        bos_token=EOS,
        pad_token=EOS,
        model_max_length=4096,
    )


def tiny_gpt2(vocab_size: int, seed: int = 0, n_positions: int = 4096, eos_token_id: int = 0) -> Any:
    """A 2-layer, 32-wide GPT2LMHeadModel; EOS is made unlikely so greedy runs to max tokens."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=n_positions,  # context length
        n_embd=32,  # width
        n_layer=2,
        n_head=4,
        initializer_range=0.2,  # 10x GPT-2's: varied gibberish instead of one token repeated
        bos_token_id=eos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=eos_token_id,
    )
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        # tied embeddings: a zero EOS row gives EOS a logit of 0, below the max of ~400 random logits
        model.transformer.wte.weight[eos_token_id].zero_()
    return model


def save_tiny_gpt2(folder: Path, seed: int = 0) -> Path:
    """Write the tiny tokenizer + model to `folder` (once), in the ordinary save_pretrained layout."""
    folder = Path(folder)
    if not (folder / "config.json").exists():
        tokenizer = train_tiny_tokenizer()
        model = tiny_gpt2(len(tokenizer), seed, eos_token_id=tokenizer.eos_token_id)
        folder.mkdir(parents=True, exist_ok=True)
        tokenizer.save_pretrained(folder)
        model.save_pretrained(folder)
    return folder


# -- music: MusicGen ----------------------------------------------------------------------------


def save_tiny_musicgen(folder: Path, seed: int = 0) -> Path:
    """A random MusicGen of ~0.1M parameters (16 kHz, 50 frames/s, 2 codebooks), saved once."""
    folder = Path(folder)
    if (folder / "config.json").exists() and (folder / "tokenizer.json").exists():
        return folder
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        EncodecConfig,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        PreTrainedTokenizerFast,
        T5Config,
    )

    torch.manual_seed(seed)
    num_codebooks = 2
    # 1. the three sub-configs; EnCodec: 16000 / (8*8*5) = 50 frames/s, 2 quantizers of 64 codes
    text = T5Config(vocab_size=64, d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8)
    audio = EncodecConfig(
        hidden_size=16,
        num_filters=4,
        upsampling_ratios=[8, 8, 5],
        codebook_size=64,
        num_lstm_layers=1,
        sampling_rate=16000,
        target_bandwidths=[1000 * 0.0 + num_codebooks * 50 * 6 / 1000],  # = 2 quantizers at 6 bits
        audio_channels=1,
    )
    if audio.num_quantizers != num_codebooks:
        raise RuntimeError(
            f"EnCodec has {audio.num_quantizers} quantizers, the decoder {num_codebooks} codebooks"
        )
    decoder = MusicgenDecoderConfig(
        vocab_size=audio.codebook_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        ffn_dim=32,
        num_codebooks=num_codebooks,
        max_position_embeddings=4096,
        pad_token_id=audio.codebook_size,
        bos_token_id=audio.codebook_size,
        decoder_start_token_id=audio.codebook_size,
    )
    config = MusicgenConfig(
        text_encoder=text.to_dict(), audio_encoder=audio.to_dict(), decoder=decoder.to_dict()
    )
    model = MusicgenForConditionalGeneration(config)
    model.generation_config.decoder_start_token_id = audio.codebook_size
    model.generation_config.pad_token_id = audio.codebook_size
    model.generation_config.do_sample = True
    model.generation_config.guidance_scale = 3.0
    model.generation_config.max_length = 4096
    # 2. a word-level tokenizer over a few words, built offline
    words = [
        "<pad>",
        "</s>",
        "<unk>",
        *"calm happy sad fast slow piano guitar drums jazz folk lofi beat a an the with and of".split(),
    ]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_tiny_lora(
    folder: Path, seed: int = 1, unet_config: dict | None = None, text_encoder: bool = True
) -> Path:
    """A random-weight LoRA (peft) for the tiny SD, saved with diffusers' save_lora_weights.

    `unet_config` overrides build the LoRA for a different UNet (a LoRA that does not fit).
    """
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    components = tiny_sd_components()
    torch.manual_seed(seed)
    unet = components["unet"]
    if unet_config:
        unet = UNet2DConditionModel(**{**unet.config, **unet_config})
    unet.add_adapter(
        LoraConfig(
            r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False
        )
    )
    layers: dict[str, Any] = {"unet_lora_layers": get_peft_model_state_dict(unet)}
    if text_encoder and not unet_config:
        encoder = components["text_encoder"]
        encoder.add_adapter(
            LoraConfig(
                r=4,
                lora_alpha=4,
                target_modules=["q_proj", "k_proj", "v_proj", "out_proj"],
                init_lora_weights=False,
            )
        )
        layers["text_encoder_lora_layers"] = get_peft_model_state_dict(encoder)
    StableDiffusionPipeline.save_lora_weights(save_directory=folder, safe_serialization=True, **layers)
    return Path(folder) / "pytorch_lora_weights.safetensors"


def save_tiny_clip(folder: Path, seed: int = 0) -> Path:
    """A tiny random CLIPModel (text + vision towers, 32-d projection) with the byte-level tokenizer."""
    from transformers import CLIPConfig, CLIPModel

    folder = Path(folder)
    if (folder / "config.json").exists():
        return folder
    torch.manual_seed(seed)
    tokenizer = tiny_clip_tokenizer()
    text = {
        "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1, "hidden_size": 32, "intermediate_size": 37,
        "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": len(tokenizer), "max_position_embeddings": 77,
    }  # fmt: skip
    vision = {
        "hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4, "num_hidden_layers": 2,
        "image_size": 32, "patch_size": 4,
    }  # fmt: skip
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=32)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_animatediff_components(seed: int = 0) -> dict[str, Any]:
    """AnimateDiff: the tiny SD parts plus a 2-block motion adapter."""
    from diffusers import MotionAdapter

    parts = tiny_sd_components(seed)
    torch.manual_seed(seed)
    adapter = MotionAdapter(
        block_out_channels=(8, 16),
        motion_layers_per_block=1,
        motion_norm_num_groups=4,
        motion_num_attention_heads=2,
        motion_max_seq_length=32,
    )
    return {
        "unet": parts["unet"],
        "motion_adapter": adapter,
        "vae": parts["vae"],
        "text_encoder": parts["text_encoder"],
        "tokenizer": parts["tokenizer"],
        "scheduler": parts["scheduler"],
        "feature_extractor": None,
        "image_encoder": None,
    }


def tiny_text_to_video_ms_components(seed: int = 0) -> dict[str, Any]:
    """text-to-video-ms: a tiny UNet3DConditionModel with the tiny SD VAE and CLIP."""
    from diffusers import UNet3DConditionModel

    parts = tiny_sd_components(seed)
    torch.manual_seed(seed)
    unet = UNet3DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=4,
    )
    return {
        "unet": unet,
        "vae": parts["vae"],
        "text_encoder": parts["text_encoder"],
        "tokenizer": parts["tokenizer"],
        "scheduler": parts["scheduler"],
    }


def save_tiny_video_pipeline(kind: str, folder: Path, seed: int = 0) -> Path:
    """Write a tiny AnimateDiff ("animatediff") or text-to-video-ms ("t2v-ms") pipeline once."""
    from diffusers import AnimateDiffPipeline, TextToVideoSDPipeline

    folder = Path(folder)
    if not (folder / "model_index.json").exists():
        if kind == "animatediff":
            AnimateDiffPipeline(**tiny_animatediff_components(seed)).save_pretrained(folder)
        else:
            TextToVideoSDPipeline(**tiny_text_to_video_ms_components(seed)).save_pretrained(folder)
    return folder
