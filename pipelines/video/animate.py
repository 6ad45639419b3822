"""Prompt travel: an animation between two or more keyframes (prompt and/or seed) on an Art model.

For frame i of N, the keyframe path gives a segment k and a position t in [0, 1] within it; then

1. noise  = slerp(noise(seed_k), noise(seed_k+1), t)      (Gaussian noise stays Gaussian on the sphere)
2. embeds = lerp or slerp(embed(prompt_k), embed(prompt_k+1), t)
3. frame  = one deterministic DDIM denoise of that noise with those embeddings (pipelines.art's
   PromptTravel: the same scheduler setup, call arguments and previews as a single Art image).

Endpoints use the keyframe's noise and embeddings unchanged, so the first and last frames are the
single Art images for those seeds and prompts. Optional afterwards: a style on every frame, flow
smoothing between consecutive frames, and a soundtrack (pipelines.video.soundtrack).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from PIL import Image

from pipelines.art import ArtRequest, PromptTravel, TravelSession
from pipelines.style import StyleRequest
from pipelines.video.soundtrack import SoundtrackRequest
from pipelines.video.soundtrack import check as check_soundtrack
from studio.events import CancelToken, EtaClock, Started, Step, UserError
from studio.inputs import MAX_SEED, clean_text, parse_seed
from studio.worker import Emit

log = logging.getLogger(__name__)

MAX_KEYFRAMES = 16
MAX_FRAMES = 240  # 30 s at 8 fps; every frame is a full denoise
MIN_FPS, MAX_FPS = 1.0, 30.0
MAX_ANIMATE_STEPS = 50
INTERPOLATIONS = ("linear", "slerp")


@dataclass(frozen=True)
class Keyframe:
    prompt: str  # "" = the previous keyframe's prompt (a seed-only keyframe)
    seed: int = -1  # -1 = random (the seed used is reported)


@dataclass(frozen=True)
class AnimateRequest:
    keyframes: tuple[Keyframe, ...]
    negative_prompt: str = ""
    model_id: str = ""  # Art registry id, hub id or folder; "" = the Art default
    frames: int = 16  # total frames, keyframes included
    fps: float = 8.0
    steps: int = 25  # DDIM steps per frame
    guidance_scale: float = 2.0  # CFG (the offline model is sharpest near 2; SD likes 7)
    width: int = 0  # 0 = the model's native size
    height: int = 0
    interpolation: str = "linear"  # text embeddings: linear | slerp (noise is always slerped)
    upscale_mode: str = "nearest"  # pixel-space model: display upscale filter
    preview_every: int = 1  # a latent preview every N denoising steps (0 = frame previews only)
    style: StyleRequest | None = None  # a style on every frame (the Style tab's settings), or None
    smoothing: float = 0.0  # flow blending weight between consecutive frames (0 = off, towards 1 = steadier)
    soundtrack: SoundtrackRequest = field(default_factory=SoundtrackRequest)
    title: str = ""  # what History shows; defaults to the keyframe prompts


@dataclass(frozen=True)
class TravelFrames:
    """What the travel produced: the raw Art frames and the finished (styled, smoothed) ones."""

    frames: list[Image.Image] = field(repr=False)  # as the Art model drew them
    outputs: list[np.ndarray] = field(repr=False)  # HxWx3 uint8, what goes into the MP4
    seeds: tuple[int, ...]  # the seed used per keyframe
    prompts: tuple[str, ...]  # the cleaned prompt per keyframe
    model: str
    parameters: str  # infotext of the first frame (a single Art image's parameters)
    seconds_per_frame: float
    cancelled: bool = False


def validate(request: AnimateRequest) -> AnimateRequest:
    """UserError for anything wrong whatever the model; random seeds are drawn here."""
    keys = request.keyframes
    if len(keys) < 2:
        raise UserError(
            "An animation needs at least two keyframes (two prompts, or one prompt and two seeds)."
        )
    if len(keys) > MAX_KEYFRAMES:
        raise UserError(f"At most {MAX_KEYFRAMES} keyframes (got {len(keys)}).")
    if not len(keys) <= int(request.frames) <= MAX_FRAMES:
        raise UserError(
            f"Frames must be between {len(keys)} (one per keyframe) and {MAX_FRAMES} (got {request.frames})."
        )
    if not MIN_FPS <= float(request.fps) <= MAX_FPS:
        raise UserError(f"FPS must be between {MIN_FPS:g} and {MAX_FPS:g} (got {request.fps}).")
    if not 1 <= int(request.steps) <= MAX_ANIMATE_STEPS:
        raise UserError(f"Steps per frame must be between 1 and {MAX_ANIMATE_STEPS} (got {request.steps}).")
    if request.interpolation not in INTERPOLATIONS:
        raise UserError(f"Interpolation must be one of: {', '.join(INTERPOLATIONS)}.")
    if not 0.0 <= float(request.smoothing) <= 1.0:
        raise UserError(f"Smoothing must be between 0 and 1 (got {request.smoothing}).")
    check_soundtrack(request.soundtrack)
    cleaned: list[Keyframe] = []
    previous = ""
    for number, key in enumerate(keys, 1):
        prompt = clean_text(key.prompt) or previous
        if not prompt:
            raise UserError(f"Keyframe {number} has no prompt, and no earlier keyframe gives one.")
        seed = parse_seed(key.seed)
        cleaned.append(Keyframe(prompt, random.randint(0, MAX_SEED) if seed == -1 else seed))
        previous = prompt
    if len({(k.prompt, k.seed) for k in cleaned}) == 1:
        raise UserError("All keyframes are the same prompt and seed; change a prompt or a seed to animate.")
    return replace(request, keyframes=tuple(cleaned), frames=int(request.frames), steps=int(request.steps))


def art_request(request: AnimateRequest) -> ArtRequest:
    """The single-image Art request every frame shares (DDIM, eta 0: deterministic)."""
    first = request.keyframes[0]
    return ArtRequest(
        prompt=first.prompt,
        negative_prompt=request.negative_prompt,
        model_id=request.model_id,
        sampler="DDIM",
        steps=request.steps,
        guidance_scale=float(request.guidance_scale),
        seed=first.seed if first.seed >= 0 else 0,
        width=int(request.width),
        height=int(request.height),
        eta=0.0,
        preview_every=int(request.preview_every),
        upscale_mode=request.upscale_mode,
    )


def travel_positions(frames: int, keyframes: int) -> list[tuple[int, float]]:
    """Frame index -> (segment k, t in [0, 1]): frames spread evenly, keyframes land on frames."""
    segments = keyframes - 1
    positions = []
    for i in range(frames):
        x = i * segments / (frames - 1)  # position along the whole path, in segments
        k = min(int(x), segments - 1)
        positions.append((k, x - k))
    return positions


def slerp(a: torch.Tensor, b: torch.Tensor, t: float, dim: int | None = None) -> torch.Tensor:
    """Spherical interpolation (Shoemake); over the whole tensor, or per vector along `dim`.

    t=0 and t=1 return the endpoints themselves; nearly parallel vectors fall back to lerp.
    """
    if t <= 0.0:
        return a
    if t >= 1.0:
        return b
    a64, b64 = a.double(), b.double()
    if dim is None:
        a_flat, b_flat = a64.reshape(1, -1), b64.reshape(1, -1)
    else:
        a_flat = a64.movedim(dim, -1).reshape(-1, a.shape[dim])
        b_flat = b64.movedim(dim, -1).reshape(-1, a.shape[dim])
    dot = (a_flat * b_flat).sum(-1) / (a_flat.norm(dim=-1) * b_flat.norm(dim=-1)).clamp_min(1e-12)
    theta = torch.arccos(dot.clamp(-1.0, 1.0)).unsqueeze(-1)  # angle between the two, per vector
    sin = torch.sin(theta)
    near = sin.abs() < 1e-6
    wa = torch.where(
        near, torch.full_like(theta, 1.0 - t), torch.sin((1.0 - t) * theta) / sin.clamp_min(1e-12)
    )
    wb = torch.where(near, torch.full_like(theta, t), torch.sin(t * theta) / sin.clamp_min(1e-12))
    out = wa * a_flat + wb * b_flat
    if dim is None:
        out = out.reshape(a.shape)
    else:
        shape = list(a.movedim(dim, -1).shape)
        out = out.reshape(shape).movedim(-1, dim)
    return out.to(a.dtype)


def slerp_tokens(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Text embeddings [1, L, D]: slerp each token vector on its own (keeps every token's norm path)."""
    return slerp(a, b, t, dim=-1)


def lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    if t <= 0.0:
        return a
    if t >= 1.0:
        return b
    return a + (b - a) * t


def render_travel(
    request: AnimateRequest,
    travel: PromptTravel,
    cancel: CancelToken,
    emit: Emit,
    finish: Callable[[Image.Image], np.ndarray] | None = None,
) -> TravelFrames:
    """Render every frame of a validated request (runs inside a stream_events worker).

    `finish(frame)` turns each raw frame into the output frame (style, smoothing); by default the
    frame as drawn.
    """
    session: TravelSession = travel.open(art_request(request), emit)
    keys = request.keyframes
    steps = session.request.steps
    total = request.frames * steps
    emit(Started(total, f"animate · {request.frames} frames · DDIM {steps} · {session.label}"))
    # 1. each keyframe's noise and embeddings, once
    noises = [session.noise(k.seed) for k in keys]
    embeds = [session.embed(k.prompt).cond for k in keys]
    mix = slerp_tokens if request.interpolation == "slerp" else lerp
    clock = EtaClock(total)
    frames: list[Image.Image] = []
    outputs: list[np.ndarray] = []
    started = time.perf_counter()
    for i, (k, t) in enumerate(travel_positions(request.frames, len(keys))):
        if cancel.cancelled:
            break
        # 2. this frame's noise (slerp) and text conditioning (lerp/slerp per token)
        noise = slerp(noises[k], noises[k + 1], t)
        embedding = mix(embeds[k], embeds[k + 1], t)
        # 3. one deterministic DDIM denoise, with per-step previews and Stop
        frame = session.render(noise, embedding, cancel, emit, clock, i * steps, total)
        if frame is None:
            break
        frames.append(frame)
        out = finish(frame) if finish is not None else np.asarray(frame.convert("RGB"))
        outputs.append(out)
        done = (i + 1) * steps
        emit(Step(done, total, Image.fromarray(out), clock.eta(done), {"frame": i + 1}))
    elapsed = time.perf_counter() - started
    first = session.parameters(keys[0].prompt, keys[0].seed, frames[0].size) if frames else ""
    return TravelFrames(
        frames,
        outputs,
        tuple(k.seed for k in keys),
        tuple(k.prompt for k in keys),
        session.label,
        first,
        elapsed / max(len(frames), 1),
        cancelled=cancel.cancelled,
    )


def parse_keyframes(text: str, base_seed: Any = -1) -> tuple[Keyframe, ...]:
    """One keyframe per line: 'prompt', 'prompt | seed' or '| seed' (seed-only: the prompt above).

    Lines without a seed get the base seed (or a random one when it is -1), so a list of prompts
    travels through the text with the same noise.
    """
    base = parse_seed(base_seed)
    if base == -1:
        base = random.randint(0, MAX_SEED)
    keys = []
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        prompt, bar, seed_text = line.rpartition("|") if "|" in line else (line, "", "")
        seed = parse_seed(seed_text) if bar and seed_text.strip() else base
        keys.append(Keyframe(prompt.strip(), seed))
    return tuple(keys)


def pad_even(frame: np.ndarray) -> np.ndarray:
    """H.264 yuv420p needs even sides: repeat the last row/column when one is odd."""
    h, w = frame.shape[:2]
    if h % 2 or w % 2:
        frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return frame
