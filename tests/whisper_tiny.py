"""A tiny faster-whisper model with random weights, built at test time without torch or a network.

Why this way: no model hub is reachable, and CTranslate2's Hugging Face converter needs torch and
transformers (about 0.9 GB). CTranslate2's own spec API (`ctranslate2.specs.WhisperSpec`) writes the
same `model.bin` from numpy arrays, and the `tokenizers` library (a faster-whisper dependency) writes
the `tokenizer.json`, so the model is real to faster-whisper: real encoder over real log-mel
features, real beam search with Whisper's timestamp rules, real language detection.

The weights are random except for a planted "stop chain", as in `../shared/models`: every decoder
block's output projection is zero (each block passes its input through), so the decoder's last hidden
state is the embedding of the previous token, and for the chain's tokens that embedding is a basis
direction the projection maps to the next token with a large logit. Decoding is then deterministic
for any audio: ``<|startoftranscript|>`` -> ``<|en|>`` (language detection),
``<|transcribe|>`` -> ``<|0.00|>`` -> the words of ``text`` -> ``<|1.00|>`` -> ``<|endoftext|>``.

Layout: the multilingual vocabulary of 51,865 tokens (CTranslate2 4.8 calls a Whisper model
multilingual when the empty token is in its vocabulary, as it is in the multilingual ones), 99 languages, 1,501 timestamps, 80 mel bins, d_model 64, 2 + 2 layers.

``python tests/whisper_tiny.py DIR`` writes one for use outside the tests (benchmarks, docs).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

#: What the planted chain says by default, word by word (each word is one token with a leading space).
TEXT = "hello world from tiny whisper"

D_MODEL, HEADS, LAYERS, FFN, N_MELS = 64, 2, 2, 256, 80
N_TEXT = 50257  # ordinary (byte-level BPE) tokens: ids 0 .. 50256, as in Whisper
SPECIALS_BEFORE = ["<|endoftext|>", "<|startoftranscript|>"]
SPECIALS_AFTER = ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]
N_TIMESTAMPS = 1501
LOGIT = 40.0  # how strongly each chain token calls the next: far above anything random


def _byte_chars() -> list[str]:
    """GPT-2's byte-to-character table, indexed by byte (the alphabet of a byte-level BPE vocabulary)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    others = [b for b in range(256) if b not in printable]
    return [chr(b) if b in printable else chr(256 + others.index(b)) for b in range(256)]


def _alphabet() -> list[str]:
    """The 256 byte tokens in GPT-2's id order: printable bytes first (so the space 'Ġ' is id 220)."""
    chars = _byte_chars()
    printable = [c for b, c in enumerate(chars) if ord(c) == b]
    return printable + [c for b, c in enumerate(chars) if ord(c) != b]


#: Whisper's language codes in the order it numbers them (the 99 of a 51,865-token vocabulary).
LANGUAGES = (
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no th ur hr bg lt la mi "
    "ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw gl mr pa si km sn yo so af oc ka be tg sd "
    "gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl mg as tt haw ln ha ba jw su"
).split()


def _languages() -> list[str]:
    return [f"<|{code}|>" for code in LANGUAGES]


def _word_tokens(text: str) -> list[str]:
    """Each word of ``text`` with its leading space as one byte-level token (UTF-8 bytes as characters)."""
    table = _byte_chars()
    return ["".join(table[b] for b in (" " + word).encode("utf-8")) for word in text.split()]


def vocabulary(text: str = TEXT) -> list[str]:
    """All 51,865 tokens in Whisper's order: text tokens, specials, languages, tasks, timestamps."""
    chars = _alphabet()
    text_tokens = chars + _word_tokens(text)
    taken = set(text_tokens)
    fillers = (a + b for a in chars for b in chars if a + b not in taken)  # never produced by the chain
    text_tokens += [next(fillers) for _ in range(N_TEXT - 1 - len(text_tokens))]
    text_tokens.append("")  # a multilingual vocabulary's last text token is empty: CTranslate2 tells the kinds apart by it
    stamps = [f"<|{i * 0.02:.2f}|>" for i in range(N_TIMESTAMPS)]
    tokens = text_tokens + SPECIALS_BEFORE + _languages() + SPECIALS_AFTER + stamps
    assert len(tokens) == 51865, len(tokens)
    return tokens


def _chain(ids: dict[str, int], text: str) -> list[tuple[int, int]]:
    """(token, the token that must follow it) for the planted transcript."""
    path = ["<|transcribe|>", "<|0.00|>", *_word_tokens(text), "<|1.00|>", "<|endoftext|>"]
    pairs = [(ids["<|startoftranscript|>"], ids["<|en|>"])]
    pairs += [(ids[a], ids[b]) for a, b in zip(path, path[1:])]
    return pairs


def _set_linear(spec, rng: np.random.Generator, out: int, inp: int, *, zero: bool = False) -> None:  # type: ignore[no-untyped-def]
    spec.weight = np.zeros((out, inp), np.float32) if zero else (rng.standard_normal((out, inp)) * 0.05).astype(np.float32)
    spec.bias = np.zeros(out, np.float32)


def _set_norm(spec) -> None:  # type: ignore[no-untyped-def]
    spec.gamma = np.ones(D_MODEL, np.float32)
    spec.beta = np.zeros(D_MODEL, np.float32)


def _spec(tokens: list[str], text: str, seed: int):  # type: ignore[no-untyped-def]
    from ctranslate2.specs import whisper_spec

    rng = np.random.default_rng(seed)
    ids = {t: i for i, t in enumerate(tokens)}
    spec = whisper_spec.WhisperSpec(LAYERS, HEADS, LAYERS, HEADS)
    enc, dec = spec.encoder, spec.decoder
    enc.conv1.weight = (rng.standard_normal((D_MODEL, N_MELS, 3)) * 0.05).astype(np.float32)
    enc.conv1.bias = np.zeros(D_MODEL, np.float32)
    enc.conv2.weight = (rng.standard_normal((D_MODEL, D_MODEL, 3)) * 0.05).astype(np.float32)
    enc.conv2.bias = np.zeros(D_MODEL, np.float32)
    enc.position_encodings.encodings = (rng.standard_normal((1500, D_MODEL)) * 0.05).astype(np.float32)
    _set_norm(enc.layer_norm)
    for layer in enc.layer:
        _set_norm(layer.self_attention.layer_norm)
        _set_linear(layer.self_attention.linear[0], rng, 3 * D_MODEL, D_MODEL)
        _set_linear(layer.self_attention.linear[1], rng, D_MODEL, D_MODEL)
        _set_norm(layer.ffn.layer_norm)
        _set_linear(layer.ffn.linear_0, rng, FFN, D_MODEL)
        _set_linear(layer.ffn.linear_1, rng, D_MODEL, FFN)
    for layer in dec.layer:  # every block adds zero: the hidden state stays the token's embedding
        _set_norm(layer.self_attention.layer_norm)
        _set_linear(layer.self_attention.linear[0], rng, 3 * D_MODEL, D_MODEL)
        _set_linear(layer.self_attention.linear[1], rng, D_MODEL, D_MODEL, zero=True)
        _set_norm(layer.attention.layer_norm)
        _set_linear(layer.attention.linear[0], rng, D_MODEL, D_MODEL)
        _set_linear(layer.attention.linear[1], rng, 2 * D_MODEL, D_MODEL)
        _set_linear(layer.attention.linear[2], rng, D_MODEL, D_MODEL, zero=True)
        _set_norm(layer.ffn.layer_norm)
        _set_linear(layer.ffn.linear_0, rng, FFN, D_MODEL)
        _set_linear(layer.ffn.linear_1, rng, D_MODEL, FFN, zero=True)
    embeddings = rng.standard_normal((len(tokens), D_MODEL)).astype(np.float32)
    projection = (rng.standard_normal((len(tokens), D_MODEL)) * 0.01).astype(np.float32)
    chain = _chain(ids, text)
    assert len(chain) <= D_MODEL, "one basis direction per chain link"
    for k, (token, following) in enumerate(chain):
        embeddings[token] = 0.0
        embeddings[token, k] = 1.0
        projection[following] = 0.0
    for k, (_token, following) in enumerate(chain):
        projection[following, k] = LOGIT / np.sqrt(D_MODEL)  # layer norm scales a basis vector by ~sqrt(d)
    dec.embeddings.weight = embeddings
    dec.position_encodings.encodings = np.zeros((448, D_MODEL), np.float32)
    _set_norm(dec.layer_norm)
    dec.projection.weight = projection
    config = spec.config
    config.suppress_ids = []
    config.suppress_ids_begin = [ids[_byte_chars()[ord(" ")]], ids["<|endoftext|>"]]
    config.lang_ids = [ids[t] for t in _languages()]
    config.alignment_heads = [(LAYERS - 1, h) for h in range(HEADS)]
    spec.register_vocabulary(tokens)
    return spec


def _tokenizer(tokens: list[str]):  # type: ignore[no-untyped-def]
    """A byte-level BPE tokenizer over the same ids (no merges: text encodes to byte tokens)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True) for t in tokens[N_TEXT:]])
    return tok


def build(out_dir: Path, *, text: str = TEXT, seed: int = 0, quantization: str | None = "int8") -> Path:
    """Write model.bin, config.json, vocabulary.json, tokenizer.json and preprocessor_config.json.

    The model says ``text`` (space-separated words, distinct, at most about 60) for any audio.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    tokens = vocabulary(text)
    spec = _spec(tokens, text, seed)
    spec.validate()
    spec.optimize(quantization=quantization)
    spec.save(str(out_dir))
    _tokenizer(tokens).save(str(out_dir / "tokenizer.json"))
    (out_dir / "preprocessor_config.json").write_text(json.dumps({"feature_size": N_MELS}), encoding="utf-8")
    return out_dir


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/whisper_tiny.py OUT_DIR")
    print(build(Path(sys.argv[1])))
