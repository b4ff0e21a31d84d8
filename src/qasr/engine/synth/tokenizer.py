"""A synthetic byte-level BPE tokenizer of the real size, in chatllm.cpp's tokenizer section format.

What the engine needs from the tokenizer section (chatllm.cpp ``src/tokenizer.cpp``:
``BPEProcessor2::Load``, ``load_vocab_list``, ``load_vocab_merges``), and what we write:

* the vocabulary, one record per id from 0: ``i32 length``, the token's bytes, ``u8 type`` (1 normal,
  4 user-defined for the added/special tokens), ended by ``i32 -1``. Tokens are in the byte-level
  alphabet (bytes 0..255 mapped to printable code points, as GPT-2 and Qwen do); every byte must be
  a token so any text can be encoded (the prompt's ``user``, ``system``, ``\\n``, ``language X``);
* the merges, ``i32 length`` + ``"left right"``, in rank order, ended by ``i32 -1``;
* the special tokens by name: ``<|im_start|>``, ``<|im_end|>``, ``<|endoftext|>``,
  ``<|audio_start|>``, ``<|audio_end|>``, ``<asr_text>`` (and ``<timestamp>`` for the aligner), which
  the engine also looks up in the meta block's ``tokenizer_config.json: added_tokens_decoder``.

Nothing else is read. The BPE tokens are random concatenations of earlier tokens (seeded), so the
sizes are real (151,643 BPE tokens, 151,387 merges: load time and memory of the tokenizer are like
the real one's) while the strings are meaningless.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

TYPE_NORMAL = 1
TYPE_USER_DEFINED = 4
MAX_TOKEN_CHARS = 12  # the section comes to ~4.2 MB, as in the published files (see shapes.py)

# Offsets from the first special id (151,643 in the real model). Names the engine does not use and
# that we do not know for sure are placeholders.
_SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>",
    "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<tool_response>",
    "</tool_response>", "<think>", "</think>",
]
AUDIO_START, AUDIO_END, AUDIO_PAD, ASR_TEXT, TIMESTAMP = 26, 27, 33, 61, 62
IM_START, IM_END = 1, 2


def special_tokens(with_timestamp: bool) -> list[str]:
    """The added tokens in id order (offset 0 = ``<|endoftext|>``)."""
    toks = list(_SPECIALS)
    toks += ["<|audio_start|>", "<|audio_end|>"]
    toks += [f"<|qasr_placeholder_{k}|>" for k in range(28, AUDIO_PAD)]
    toks.append("<|audio_pad|>")
    toks += [f"<|qasr_placeholder_{k}|>" for k in range(AUDIO_PAD + 1, ASR_TEXT)]
    toks.append("<asr_text>")
    if with_timestamp:
        toks.append("<timestamp>")
    assert toks.index("<asr_text>") == ASR_TEXT and toks.index("<|audio_pad|>") == AUDIO_PAD
    return toks


_SPACE = chr(0x120)  # "Ġ": the byte-level character of the space (byte 0x20)


def byte_alphabet() -> list[str]:
    """The 256 byte-level characters in the order byte-level BPE vocabularies start with: the
    printable Latin-1 bytes as themselves, the others moved to U+0100 and up."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(0x100 + extra)
            extra += 1
    return [chars[b] for b in printable] + [chars[b] for b in range(256) if b not in printable]


@dataclass(frozen=True)
class Vocabulary:
    tokens: list[str]  # BPE tokens, ids 0..base-1
    merges: list[tuple[str, str]]
    specials: list[str]  # ids base..
    ascii_bytes: frozenset[int]  # ids below 256 whose byte is printable ASCII or the space

    def emittable(self, rows: int) -> list[bool]:
        """Per output row: may the model emit this id? Only tokens that decode to printable ASCII on
        their own (every merge, and the printable single bytes), so each generated token reaches the
        caller as its own text chunk instead of waiting in the engine for the rest of a UTF-8 sequence."""
        n = len(self.tokens)
        return [(i in self.ascii_bytes) if i < 256 else i < n for i in range(rows)]


def build(base_vocab: int, with_timestamp: bool, seed: int) -> Vocabulary:
    """256 byte tokens, then ``base_vocab - 256`` merges of earlier printable tokens (shorter ones
    preferred), so every merged token is printable ASCII (``Ġ`` standing for the space)."""
    alphabet = byte_alphabet()
    if base_vocab < len(alphabet) + 1:
        raise ValueError(f"a byte-level vocabulary needs more than {len(alphabet)} tokens, got {base_vocab}")
    ascii_ids = frozenset(i for i, ch in enumerate(alphabet) if "!" <= ch <= "~" or ch == _SPACE)
    rng = random.Random(seed)
    tokens = list(alphabet)
    pool = [alphabet[i] for i in sorted(ascii_ids)]
    seen = set(tokens)
    merges: list[tuple[str, str]] = []
    while len(tokens) < base_vocab:
        n = len(pool)
        left = pool[int(n * rng.random() ** 2)]
        right = pool[int(n * rng.random() ** 3)]
        joined = left + right
        if len(joined) > MAX_TOKEN_CHARS or joined in seen:
            continue
        seen.add(joined)
        tokens.append(joined)
        pool.append(joined)
        merges.append((left, right))
    return Vocabulary(tokens, merges, special_tokens(with_timestamp), ascii_ids)


def _record(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("<i", len(raw)) + raw


def section(vocab: Vocabulary) -> bytes:
    """The tokenizer section as chatllm.cpp reads it."""
    parts = [_record(t) + bytes([TYPE_NORMAL]) for t in vocab.tokens]
    parts += [_record(t) + bytes([TYPE_USER_DEFINED]) for t in vocab.specials]
    parts.append(struct.pack("<i", -1))
    parts += [_record(f"{a} {b}") for a, b in vocab.merges]
    parts.append(struct.pack("<i", -1))
    return b"".join(parts)
