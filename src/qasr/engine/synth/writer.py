"""Write a random-weight model with real shapes in chatllm.cpp's ``ggmm`` format, streamed to disk.

File layout (what chatllm.cpp's loader reads; see `qasr.engine.modelfile`): ``b"ggmm"``, u32 version 1,
u32 offsets of the config, tokenizer and tensor sections (patched in at the end), the JSON meta
block (`qasr.engine.synth.meta`), the config block, the tokenizer section
(`qasr.engine.synth.tokenizer`), then per tensor ``i32 name length``, name, ``i32 ndim``, dims
outermost first, ``i32 ggml type``, zero padding to a 16-byte boundary, and the data.

Weights are never quantized: for q4_0 / q8_0 each 32-element block is written directly as a random
fp16 scale (sized so a matrix's values have a standard deviation of about 1/sqrt(fan-in), which keeps
activations finite through every layer) and random quant bytes, generated in chunks of a few MB with
a seeded ``numpy.random.Generator`` (same seed, same bytes). Memory stays bounded by one chunk plus
the tokenizer.

Decoding length: the output-head rows of every id that is not a printable-ASCII BPE token (all
special tokens, ``<|im_end|>`` included, the unassigned tail of the vocabulary, and the single
non-ASCII bytes) are zero, so their logit is 0 while the best of 151,000 random logits is several
standard deviations above it; with the engine's default sampling (top-k 20) a stop token can never
be drawn, and every generated token prints as its own text chunk. A synthetic ASR model
therefore decodes until the caller's token cap (``chatllm_set_gen_max_tokens``, ``Model.transcribe_raw(...,
max_tokens=N)``, or ``main --max_new_tokens N``) or the context length: benchmarks get exactly the
number of tokens they ask for.

The file is written under a temporary name beside the target and renamed into place when complete
(`qasr.fileio.atomic_file`).
"""

from __future__ import annotations

import json
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from qasr.engine.synth import meta as meta_block
from qasr.engine.synth import tokenizer
from qasr.engine.synth.shapes import (
    BLOCK,
    BLOCK_BYTES,
    F16,
    F32,
    QUANT_TYPES,
    TENSOR_ALIGNMENT,
    Architecture,
    TensorSpec,
    tensors,
)
from qasr.errors import UsageError
from qasr.fileio import atomic_file
from qasr.progress import Progress, SilentProgress

CHUNK_BYTES = 8 << 20
PROGRESS_KEY = "synth"
DECODING_NOTE = ("never stops by itself (stop-token head rows are zero): cap it with chatllm_set_gen_max_tokens "
                 "or main --max_new_tokens")
# Standard deviation of a uniformly random quant value: int8 for q8_0, (nibble - 8) for q4_0.
_QUANT_STD = {8: float(np.sqrt((256**2 - 1) / 12)), 2: float(np.sqrt((16**2 - 1) / 12))}
_Q4_ZERO = 0x88  # two nibbles of 8: the value 0


@dataclass(frozen=True)
class SynthResult:
    path: Path
    architecture: str
    quantization: str
    seed: int
    file_bytes: int
    weight_bytes: int
    tokenizer_bytes: int
    tensor_count: int
    parameters: int
    seconds: float

    def to_dict(self) -> dict[str, object]:
        return {"path": str(self.path), "architecture": self.architecture, "quantization": self.quantization,
                "seed": self.seed, "file_bytes": self.file_bytes, "weight_bytes": self.weight_bytes,
                "tokenizer_bytes": self.tokenizer_bytes, "tensor_count": self.tensor_count,
                "parameters": self.parameters, "seconds": round(self.seconds, 3), "synthetic": True}


def _pad(f: BinaryIO) -> None:
    f.write(b"\0" * (-f.tell() % TENSOR_ALIGNMENT))


def _tensor_header(spec: TensorSpec) -> bytes:
    name = spec.name.encode()
    dims = spec.dims
    return (struct.pack("<i", len(name)) + name + struct.pack("<i", len(dims)) + struct.pack(f"<{len(dims)}i", *dims)
            + struct.pack("<i", spec.ggml_type))


def _float_values(spec: TensorSpec, rng: np.random.Generator) -> np.ndarray:
    n = spec.elements
    if spec.init == "norm":
        return 1.0 + 0.02 * rng.standard_normal(n, dtype=np.float32)
    if spec.init == "bias":
        return 0.02 * rng.standard_normal(n, dtype=np.float32)
    return rng.standard_normal(n, dtype=np.float32) / np.float32(np.sqrt(spec.fan_in))


def _std(spec: TensorSpec) -> float:
    return 0.05 if spec.init == "embedding" else 1.0 / float(np.sqrt(spec.fan_in))


def quant_chunks(spec: TensorSpec, rng: np.random.Generator, silent: np.ndarray | None):
    """Yield the tensor's bytes in chunks of whole rows of blocks: [fp16 scale | quant bytes] each.
    Rows where ``silent`` is true are zero (scale 0, quants at their zero point)."""
    rows, cols = spec.dims[0], spec.dims[-1]
    for d in spec.dims[1:-1]:
        rows *= d
    per_row = cols // BLOCK
    block_bytes = BLOCK_BYTES[spec.ggml_type]
    base_scale = _std(spec) / _QUANT_STD[spec.ggml_type]
    step = max(1, CHUNK_BYTES // (per_row * block_bytes))
    for first in range(0, rows, step):
        n_rows = min(step, rows - first)
        nb = n_rows * per_row
        out = np.empty((nb, block_bytes), dtype=np.uint8)
        scales = (base_scale * (0.75 + 0.5 * rng.random(nb, dtype=np.float32))).astype(np.float16)
        out[:, :2] = scales.view(np.uint8).reshape(nb, 2)
        out[:, 2:] = np.frombuffer(rng.bytes(nb * (block_bytes - 2)), dtype=np.uint8).reshape(nb, block_bytes - 2)
        if silent is not None:
            mute = np.repeat(silent[first:first + n_rows], per_row)
            out[mute, :2] = 0
            out[mute, 2:] = _Q4_ZERO if spec.ggml_type == 2 else 0
        yield out


def _write_tensor(f: BinaryIO, spec: TensorSpec, rng: np.random.Generator, silent: np.ndarray | None,
                  progress: Progress) -> None:
    f.write(_tensor_header(spec))
    _pad(f)
    if spec.ggml_type in (F32, F16):
        values = _float_values(spec, rng).astype(np.float32 if spec.ggml_type == F32 else np.float16)
        f.write(values.tobytes())
        progress.advance(PROGRESS_KEY, values.nbytes)
        return
    for chunk in quant_chunks(spec, rng, silent):
        f.write(memoryview(chunk).cast("B"))
        progress.advance(PROGRESS_KEY, chunk.nbytes)


@dataclass(frozen=True)
class Plan:
    """Everything but the weights, and the exact size of the file they make."""

    meta: bytes
    config: bytes
    tokenizer: bytes
    specs: list[TensorSpec]
    silent_rows: np.ndarray | None  # output-head rows to zero (ASR); None for the aligner's class head

    @property
    def off_tensors(self) -> int:
        return 20 + len(self.meta) + len(self.config) + len(self.tokenizer)

    @property
    def file_bytes(self) -> int:
        pos = self.off_tensors
        for spec in self.specs:
            pos += len(_tensor_header(spec))
            pos += -pos % TENSOR_ALIGNMENT + spec.nbytes
        return pos


def plan(arch: Architecture, dtype: str = "q4_0", seed: int = 0) -> Plan:
    """Lay out a synthetic file without writing it (the tokenizer is built: about a second at full size)."""
    if dtype not in QUANT_TYPES:
        raise UsageError(f"synthetic models are written as {' or '.join(QUANT_TYPES)}, not {dtype!r}")
    quant = QUANT_TYPES[dtype]
    vocab = tokenizer.build(arch.base_vocab, with_timestamp=bool(arch.classify_num), seed=seed)
    if arch.base_vocab + len(vocab.specials) > arch.text.vocab_size:
        raise ValueError(f"{arch.name}: {arch.base_vocab + len(vocab.specials)} tokens do not fit {arch.text.vocab_size} rows")
    meta = json.dumps(meta_block.meta(arch, vocab, dtype, seed, DECODING_NOTE), ensure_ascii=False).encode()
    meta += b"\0" * (-(len(meta) + 20) % TENSOR_ALIGNMENT)
    silent = None if arch.classify_num else ~np.array(vocab.emittable(arch.head_rows), dtype=bool)
    return Plan(meta, meta_block.config_block(arch, quant), tokenizer.section(vocab), tensors(arch, quant), silent)


def write_model(arch: Architecture, path: str | os.PathLike[str], *, dtype: str = "q4_0", seed: int = 0,
                progress: Progress | None = None, label: str | None = None) -> SynthResult:
    """Write ``arch`` with random weights as ``dtype`` (q4_0 or q8_0) to ``path`` (replaced atomically);
    ``progress`` counts bytes (`qasr.progress`, task ``"synth"``)."""
    target = Path(path)
    progress = progress or SilentProgress()
    t0 = time.perf_counter()
    layout = plan(arch, dtype, seed)
    rng = np.random.default_rng(seed)
    try:
        # no fsync: a synthetic file is regenerated in seconds, and flushing 2.5 GB would double the time
        with atomic_file(target, "wb", fsync=False) as f:
            f.write(b"ggmm" + struct.pack("<IIII", 1, 0, 0, 0) + layout.meta)
            off_config = f.tell()
            f.write(layout.config)
            off_tokenizer = f.tell()
            f.write(layout.tokenizer)
            progress.start(PROGRESS_KEY, layout.file_bytes, label=label or target.name, done=f.tell())
            for spec in layout.specs:
                _write_tensor(f, spec, rng, layout.silent_rows if spec.init == "head" else None, progress)
            size = f.tell()
            if size != layout.file_bytes:
                raise RuntimeError(f"wrote {size} bytes, planned {layout.file_bytes}")  # a writer bug, never data
            f.seek(8)
            f.write(struct.pack("<III", off_config, off_tokenizer, layout.off_tensors))
    finally:
        progress.stop()
    specs = layout.specs
    return SynthResult(target, arch.name, dtype, seed, size, sum(s.nbytes for s in specs), len(layout.tokenizer),
                       len(specs), sum(s.elements for s in specs), time.perf_counter() - t0)
