"""Write a random-weight Qwen3-ASR in CrispASR's GGUF layout, streamed to disk.

What CrispASR's loader reads (its converter ``models/convert-qwen3-asr-to-gguf.py`` and
``src/qwen3_asr.cpp``, read from the public repository; none of its code is here):

* ``general.architecture = "qwen3asr"``; hyper-parameters under ``qwen3asr.*`` (mel front end,
  ``audio.{n_layers,d_model,n_heads,head_dim,ff_dim,conv_channels,proj_dim,max_source_pos}``,
  ``llm.{n_layers,d_model,n_heads,n_kv_heads,head_dim,ff_dim,rope_theta,rms_norm_eps,vocab_size,max_pos}``)
  and the special token ids; a ``gpt2`` tokenizer (``tokenizer.ggml.tokens`` and ``.merges``);
* tensors ``audio.conv.{1,2,3}``, ``audio.conv_out``, ``audio.blk.N.{attn_norm,attn_q,attn_k,attn_v,
  attn_out,ffn_norm,ffn_up,ffn_down}``, ``audio.ln_post``, ``audio.proj{1,2}``, the baked mel
  filterbank and Hann window, ``token_embd``, ``blk.N.{attn_norm,attn_q,attn_k,attn_v,attn_output,
  attn_q_norm,attn_k_norm,ffn_norm,ffn_gate,ffn_up,ffn_down}``, ``output_norm``, ``output``. The
  ForcedAligner is the same body with a 5,000-row ``output`` head.

Types follow the published files: 1-D tensors and the mel tables f32, convolution kernels f16, the
other matrices in the chosen type (f16, q8_0, q4_0 or q4_k); below 8 bits the audio tower stays
q8_0, as CrispASR's 2026-07 rebake of its published files does. A matrix whose rows are not whole
blocks of the type falls back to q8_0 (or f16).

Like `qasr.engine.synth.writer` (same shapes, same synthetic tokenizer, same seed rule): the output
head rows of every token that is not printable ASCII are zero, so greedy decoding never picks a stop
token and a synthetic model decodes until its token cap (CrispASR's default: 512 new tokens). The
file says it is synthetic in ``general.name`` and ``qasr.synthetic``; `qasr.engine.gguf` reads it.
"""

from __future__ import annotations

import os
import re
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from qasr import __version__
from qasr.engine import gguf as fmt
from qasr.engine.synth import tokenizer
from qasr.engine.synth.shapes import F16, F32, Q4_0, Q8_0, Architecture, TensorSpec, official
from qasr.engine.synth.writer import CHUNK_BYTES, PROGRESS_KEY, SynthResult, quant_chunks
from qasr.errors import UsageError
from qasr.fileio import atomic_file
from qasr.progress import Progress, SilentProgress

Q4_K = 12
GGUF_TYPES = {"f16": F16, "q8_0": Q8_0, "q4_0": Q4_0, "q4_k": Q4_K}
ALIGNMENT = fmt.DEFAULT_ALIGNMENT
N_FFT, HOP, SAMPLE_RATE = 400, 160, 16_000
_BLOCK = {F16: 1, Q8_0: 32, Q4_0: 32, Q4_K: 256}
NOTE = ("random weights with the published shapes: for speed and memory measurements only; its output is "
        "meaningless; it never stops by itself (cap it with max new tokens)")


def _type_for(name: str, dims: tuple[int, ...], quant: int) -> int:
    if len(dims) <= 1 or name.startswith("audio.mel"):
        return F32
    if len(dims) > 2:
        return F16
    if quant in (Q4_0, Q4_K) and name.startswith("audio."):
        quant = Q8_0  # the published sub-8-bit files keep the audio tower at q8_0
    for t in (quant, Q8_0, F16):
        if dims[-1] % _BLOCK[t] == 0:
            return t
    return F16


# CrispASR's converter (``models/convert-qwen3-asr-to-gguf.py``): its DIRECT_THINKER, AUDIO_SUB and TEXT_SUB tables.
DIRECT = {"thinker.audio_tower.conv2d1": "audio.conv.1", "thinker.audio_tower.conv2d2": "audio.conv.2",
          "thinker.audio_tower.conv2d3": "audio.conv.3", "thinker.model.embed_tokens": "token_embd",
          "thinker.model.norm": "output_norm", "thinker.lm_head": "output"}  # fmt: skip
AUDIO_SUB = {"self_attn_layer_norm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
             "self_attn.v_proj": "attn_v", "self_attn.out_proj": "attn_out", "final_layer_norm": "ffn_norm",
             "fc1": "ffn_up", "fc2": "ffn_down"}  # fmt: skip
TEXT_SUB = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
            "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm",
            "self_attn.k_norm": "attn_k_norm", "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate",
            "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}  # fmt: skip
_LAYER = re.compile(r"thinker\.(audio_tower|model)\.layers\.(\d+)\.(.+)")


def crispasr_name(official_name: str) -> str:
    """An official checkpoint name as CrispASR's converter writes it (``...layers.3.fc1.bias`` -> ``audio.blk.3.ffn_up.bias``)."""
    stem, kind = official_name.rsplit(".", 1)
    if stem in DIRECT:
        return f"{DIRECT[stem]}.{kind}"
    layer = _LAYER.fullmatch(stem)
    if layer:
        table, prefix = (AUDIO_SUB, "audio.blk") if layer[1] == "audio_tower" else (TEXT_SUB, "blk")
        return f"{prefix}.{layer[2]}.{table[layer[3]]}.{kind}"
    return f"{stem.replace('thinker.audio_tower.', 'audio.')}.{kind}"  # conv_out, ln_post, proj1, proj2


def tensors(arch: Architecture, quant: int) -> list[TensorSpec]:
    """Every tensor in file order with CrispASR's names (the mel tables first); dims outermost first."""
    out = [TensorSpec("audio.mel_filters", (N_FFT // 2 + 1, arch.audio.mel_bins), F32, "mel"),
           TensorSpec("audio.mel_window", (N_FFT,), F32, "window")]
    for name, dims, init in official(arch):
        new = crispasr_name(name)
        out.append(TensorSpec(new, dims, _type_for(new, dims, quant), init))
    return out


# --- metadata -----------------------------------------------------------------------------------

def _string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


def _kv(key: str, value: Any) -> bytes:
    """One key/value pair; the GGUF type follows the Python type (bool, int as u32, float as f32, str, list of str)."""
    head = _string(key)
    if isinstance(value, bool):
        return head + struct.pack("<I?", fmt.BOOL, value)
    if isinstance(value, int):
        return head + struct.pack("<II", fmt.U32, value)
    if isinstance(value, float):
        return head + struct.pack("<If", fmt.F32, value)
    if isinstance(value, str):
        return head + struct.pack("<I", fmt.STRING) + _string(value)
    return head + struct.pack("<IIQ", fmt.ARRAY, fmt.STRING, len(value)) + b"".join(_string(s) for s in value)


def metadata(arch: Architecture, vocab: tokenizer.Vocabulary, dtype: str, seed: int) -> dict[str, Any]:
    a, t, base = arch.audio, arch.text, arch.base_vocab
    k = fmt.ARCHITECTURE
    tokens = vocab.tokens + vocab.specials
    tokens += [f"[PAD{i}]" for i in range(len(tokens), t.vocab_size)]
    return {
        "general.architecture": k, "general.name": f"{arch.name}-{dtype}-SYNTHETIC", "general.alignment": ALIGNMENT,
        fmt.SYNTHETIC_KEY: True, f"{fmt.SYNTHETIC_KEY}.seed": seed, f"{fmt.SYNTHETIC_KEY}.note": NOTE,
        f"{fmt.SYNTHETIC_KEY}.generator": f"qasr {__version__} (qasr models synth --format gguf)",
        f"{k}.sample_rate": SAMPLE_RATE, f"{k}.n_mels": a.mel_bins, f"{k}.n_fft": N_FFT, f"{k}.win_length": N_FFT,
        f"{k}.hop_length": HOP, f"{k}.audio.n_layers": a.layers, f"{k}.audio.d_model": a.d_model,
        f"{k}.audio.n_heads": a.heads, f"{k}.audio.head_dim": a.d_model // a.heads, f"{k}.audio.ff_dim": a.ffn,
        f"{k}.audio.conv_channels": a.downsample_hidden, f"{k}.audio.proj_dim": a.output_dim,
        f"{k}.audio.max_source_pos": a.max_source_positions, f"{k}.llm.n_layers": t.layers,
        f"{k}.llm.d_model": t.hidden, f"{k}.llm.n_heads": t.heads, f"{k}.llm.n_kv_heads": t.kv_heads,
        f"{k}.llm.head_dim": t.head_dim, f"{k}.llm.ff_dim": t.intermediate, f"{k}.llm.rope_theta": float(t.rope_theta),
        f"{k}.llm.rms_norm_eps": 1e-6, f"{k}.llm.vocab_size": t.vocab_size, f"{k}.llm.max_pos": t.max_position,
        f"{k}.audio_start_token_id": base + tokenizer.AUDIO_START, f"{k}.audio_end_token_id": base + tokenizer.AUDIO_END,
        f"{k}.audio_pad_token_id": base + tokenizer.AUDIO_PAD, f"{k}.eos_token_id": base + tokenizer.IM_END,
        f"{k}.pad_token_id": base, "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.merges": [f"{left} {right}" for left, right in vocab.merges],
    }


def mel_filters(n_mels: int) -> np.ndarray:
    """Slaney-scale, Slaney-normalised triangles (WhisperFeatureExtractor's), shape (n_fft/2+1, n_mels)."""
    def to_mel(hz: np.ndarray) -> np.ndarray:
        return np.where(hz < 1000.0, hz * 3.0 / 200.0, 15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) / (np.log(6.4) / 27.0))

    def to_hz(mel: np.ndarray) -> np.ndarray:
        return np.where(mel < 15.0, mel * 200.0 / 3.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)))

    edges = to_hz(np.linspace(to_mel(np.array(0.0)), to_mel(np.array(SAMPLE_RATE / 2)), n_mels + 2))
    freqs = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)[:, None]
    lo, mid, hi = edges[:-2], edges[1:-1], edges[2:]
    rising, falling = (freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)
    return (np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (hi - lo))).astype(np.float32)


# --- weights ------------------------------------------------------------------------------------

def _rows(spec: TensorSpec) -> tuple[int, int]:
    return spec.elements // spec.dims[-1], spec.dims[-1]


def _std(spec: TensorSpec) -> float:
    return 0.05 if spec.init == "embedding" else 1.0 / float(np.sqrt(spec.fan_in))


def _float_chunks(spec: TensorSpec, rng: np.random.Generator, silent: np.ndarray | None) -> Iterator[np.ndarray]:
    if spec.init == "mel":
        yield mel_filters(spec.dims[1])
        return
    if spec.init == "window":
        yield (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)
        return
    rows, cols = _rows(spec)
    dtype = np.float32 if spec.ggml_type == F32 else np.float16
    step = max(1, CHUNK_BYTES // (4 * cols))
    for first in range(0, rows, step):
        n = min(step, rows - first)
        v = rng.standard_normal((n, cols), dtype=np.float32)
        if spec.init == "norm":
            v = 1.0 + 0.02 * v
        else:
            v *= np.float32(0.02 if spec.init == "bias" else _std(spec))
        if silent is not None:
            v[silent[first:first + n]] = 0.0
        yield v.astype(dtype)


def _q4_k_chunks(spec: TensorSpec, rng: np.random.Generator, silent: np.ndarray | None) -> Iterator[np.ndarray]:
    """Blocks of 256: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins, 128 bytes of nibbles. dmin = 7.5 d
    centres the values (mean scale 31.5 x mean nibble 7.5 against mean min 31.5); their std is about 258 d."""
    rows, cols = _rows(spec)
    per_row = cols // 256
    step = max(1, CHUNK_BYTES // (per_row * 144))
    for first in range(0, rows, step):
        n = min(step, rows - first)
        nb = n * per_row
        out = np.frombuffer(rng.bytes(nb * 144), dtype=np.uint8).reshape(nb, 144).copy()
        d = (_std(spec) / 258.0 * (0.75 + 0.5 * rng.random(nb, dtype=np.float32))).astype(np.float16)
        if silent is not None:
            d[np.repeat(silent[first:first + n], per_row)] = 0
        out[:, 0:2] = d.view(np.uint8).reshape(nb, 2)
        out[:, 2:4] = (d.astype(np.float32) * 7.5).astype(np.float16).view(np.uint8).reshape(nb, 2)
        yield out


def _chunks(spec: TensorSpec, rng: np.random.Generator, silent: np.ndarray | None) -> Iterator[np.ndarray]:
    if spec.ggml_type in (F32, F16):
        return _float_chunks(spec, rng, silent)
    if spec.ggml_type == Q4_K:
        return _q4_k_chunks(spec, rng, silent)
    return quant_chunks(spec, rng, silent)


def _header(meta: dict[str, Any], specs: list[TensorSpec]) -> bytes:
    out = [fmt.GGUF_MAGIC, struct.pack("<IQQ", 3, len(specs), len(meta))]
    out += [_kv(k, v) for k, v in meta.items()]
    offset = 0
    for s in specs:
        ne = tuple(reversed(s.dims))  # ggml order: innermost first
        out.append(_string(s.name) + struct.pack(f"<I{len(ne)}QIQ", len(ne), *ne, s.ggml_type, offset))
        offset += -(-s.nbytes // ALIGNMENT) * ALIGNMENT
    head = b"".join(out)
    return head + b"\0" * (-len(head) % ALIGNMENT)


def _pad(f: BinaryIO) -> None:
    f.write(b"\0" * (-f.tell() % ALIGNMENT))


def write_gguf(arch: Architecture, path: str | os.PathLike[str], *, dtype: str = "q4_k", seed: int = 0,
               progress: Progress | None = None, label: str | None = None) -> SynthResult:
    """Write ``arch`` with random weights as ``dtype`` (f16, q8_0, q4_0, q4_k) to ``path`` (replaced atomically)."""
    if dtype not in GGUF_TYPES:
        raise UsageError(f"synthetic GGUF models are written as {', '.join(GGUF_TYPES)}, not {dtype!r}")
    target, progress = Path(path), progress or SilentProgress()
    t0 = time.perf_counter()
    vocab = tokenizer.build(arch.base_vocab, with_timestamp=bool(arch.classify_num), seed=seed)
    specs = tensors(arch, GGUF_TYPES[dtype])
    head = _header(metadata(arch, vocab, dtype, seed), specs)
    silent = None if arch.classify_num else ~np.array(vocab.emittable(arch.head_rows), dtype=bool)
    total = len(head) + sum(-(-s.nbytes // ALIGNMENT) * ALIGNMENT for s in specs)
    rng = np.random.default_rng(seed)
    try:
        with atomic_file(target, "wb", fsync=False) as f:  # no fsync: regenerated in seconds
            f.write(head)
            progress.start(PROGRESS_KEY, total, label=label or target.name, done=len(head))
            for spec in specs:
                start = f.tell()
                for chunk in _chunks(spec, rng, silent if spec.init == "head" else None):
                    f.write(memoryview(np.ascontiguousarray(chunk)).cast("B"))
                    progress.advance(PROGRESS_KEY, chunk.nbytes)
                if f.tell() - start != spec.nbytes:
                    raise RuntimeError(f"{spec.name}: wrote {f.tell() - start} bytes, planned {spec.nbytes}")  # a writer bug
                _pad(f)
            size = f.tell()
    finally:
        progress.stop()
    return SynthResult(target, arch.name, dtype, seed, size, sum(s.nbytes for s in specs), len(head), len(specs),
                       sum(s.elements for s in specs), time.perf_counter() - t0)
