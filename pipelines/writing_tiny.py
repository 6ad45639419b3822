"""A tiny random GPT-2 with a BPE tokenizer trained offline: the writing "debug" entry and test fixture.

The tokenizer is a byte-level BPE trained by `tokenizers` on a few built-in sentences in
milliseconds; the model is a 2-layer GPT-2 from a config. Weights are random with a fixed seed, so
the text is deterministic gibberish: it proves the plumbing (prompting, streaming, Stop, saving),
not quality. The same classes and code paths as a hub GPT-2 run underneath.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

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
