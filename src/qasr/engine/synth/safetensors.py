"""Write a random-weight Qwen3-ASR checkpoint in the official Hugging Face layout: BF16 safetensors.

The layout every other engine starts from (antirez/qwen-asr reads it directly, memory-mapped; the
chatllm.cpp, CrispASR and llama.cpp converters read it): a directory with ``config.json`` (the
``thinker_config`` with ``audio_config`` and ``text_config``, as `qasr.engine.synth.meta` builds it
for our own writer), ``generation_config.json``, ``preprocessor_config.json``,
``tokenizer_config.json`` (the added tokens by id), ``vocab.json`` + ``merges.txt`` (the byte-level
BPE), and the weights in BF16 under the official names (``thinker.audio_tower.conv2d1.weight``,
``thinker.audio_tower.layers.N.self_attn.q_proj.weight``, ``thinker.model.layers.N.mlp.gate_proj.weight``,
``thinker.model.embed_tokens.weight``, ``thinker.lm_head.weight``...; antirez/qwen-asr ``MODEL.md``
and the tiny checkpoints in ../shared/models/hf list the same names and shapes).

Weights go in ``model.safetensors`` while they fit `MAX_SHARD_BYTES` (the 0.6B models: ~1.9 GB),
else in ``model-0000K-of-0000N.safetensors`` shards with ``model.safetensors.index.json`` (the 1.7B:
~4.7 GB in two, as published). A safetensors file is ``u64`` header length, a JSON header (dtype,
shape, ``data_offsets`` per tensor, names in sorted order, and ``__metadata__``), then the bytes.

The directory says it is synthetic: its name ends in ``.synthetic``, ``config.json`` carries
``qasr_synthetic`` and each file's ``__metadata__`` ``qasr_synthetic: "true"``. The same seed gives
the same bytes. As in our other writers, the embedding and head rows of every token that is not
printable ASCII are zero (Qwen3-ASR-0.6B ties its head to the embedding in engines that read only
one of them), so greedy decoding never stops by itself.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from qasr.engine.synth import meta as meta_block
from qasr.engine.synth import tokenizer
from qasr.engine.synth.shapes import QWEN3_ALIGNER_06B, QWEN3_ASR_06B, QWEN3_ASR_17B, Architecture, TensorSpec, official
from qasr.engine.synth.writer import CHUNK_BYTES, PROGRESS_KEY, SynthResult
from qasr.errors import ModelFileError, UsageError
from qasr.fileio import atomic_file, write_atomic
from qasr.progress import Progress, SilentProgress

BF16 = 30  # ggml's id, for `TensorSpec.nbytes` (2 bytes an element)
MAX_SHARD_BYTES = 4_000_000_000
SYNTHETIC_DIR_SUFFIX = ".synthetic"
#: Names ``qasr models synth`` takes for this format (they are not downloadable registry entries).
CHECKPOINTS: dict[str, Architecture] = {
    "qwen3-asr-0.6b-hf": QWEN3_ASR_06B, "qwen3-asr-1.7b-hf": QWEN3_ASR_17B, "qwen3-aligner-0.6b-hf": QWEN3_ALIGNER_06B,
}
GENERATION = {"do_sample": False, "max_new_tokens": 4096}


def tensors(arch: Architecture) -> list[TensorSpec]:
    """Every tensor under its official name, in the sorted order safetensors files keep, BF16."""
    return sorted((TensorSpec(name, dims, BF16, init) for name, dims, init in official(arch)), key=lambda s: s.name)


def shards(specs: list[TensorSpec], limit: int | None = None) -> list[list[TensorSpec]]:
    """Tensors in order, a new shard whenever the next one would pass ``limit`` bytes (`MAX_SHARD_BYTES`)."""
    limit = MAX_SHARD_BYTES if limit is None else limit
    out: list[list[TensorSpec]] = [[]]
    size = 0
    for s in specs:
        if out[-1] and size + s.nbytes > limit:
            out.append([])
            size = 0
        out[-1].append(s)
        size += s.nbytes
    return out


def _bf16(values: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits, rounded to nearest even."""
    bits = values.astype(np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def _chunks(spec: TensorSpec, rng: np.random.Generator, silent: np.ndarray | None) -> Iterator[np.ndarray]:
    cols = spec.dims[-1]
    rows = spec.elements // cols
    std = 0.05 if spec.init == "embedding" else 1.0 / float(np.sqrt(spec.fan_in))
    step = max(1, CHUNK_BYTES // (4 * cols))
    for first in range(0, rows, step):
        n = min(step, rows - first)
        v = rng.standard_normal((n, cols), dtype=np.float32)
        v = 1.0 + 0.02 * v if spec.init == "norm" else v * np.float32(0.02 if spec.init == "bias" else std)
        if silent is not None and spec.init in ("embedding", "head"):
            v[silent[first:first + n]] = 0.0
        yield _bf16(v)


def _header(specs: list[TensorSpec], seed: int) -> bytes:
    table: dict[str, object] = {"__metadata__": {"format": "pt", "qasr_synthetic": "true", "seed": str(seed)}}
    offset = 0
    for s in specs:
        table[s.name] = {"dtype": "BF16", "shape": list(s.dims), "data_offsets": [offset, offset + s.nbytes]}
        offset += s.nbytes
    raw = json.dumps(table, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


def _side_files(arch: Architecture, vocab: tokenizer.Vocabulary, seed: int) -> dict[str, str]:
    m = meta_block.meta(arch, vocab, "bf16", seed, "never stops by itself (stop-token rows are zero)")
    config = {**m["config.json"], "torch_dtype": "bfloat16", meta_block.SYNTHETIC_META_KEY: m[meta_block.SYNTHETIC_META_KEY]}
    thinker = config["thinker_config"]  # the training-only keys the published config also has
    thinker["initializer_range"] = 0.02
    thinker["audio_config"].update(dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, initializer_range=0.02)
    thinker["text_config"].update(attention_dropout=0.0, initializer_range=0.02, use_cache=True, sliding_window=None,
                                  use_sliding_window=False)
    return {
        "config.json": json.dumps(config, indent=2, ensure_ascii=False),
        "generation_config.json": json.dumps(GENERATION, indent=2),
        "preprocessor_config.json": json.dumps(meta_block.PREPROCESSOR, indent=2),
        "tokenizer_config.json": json.dumps(m["tokenizer_config.json"], indent=2, ensure_ascii=False),
        "vocab.json": json.dumps({tok: i for i, tok in enumerate(vocab.tokens)}, ensure_ascii=False),
        "merges.txt": "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in vocab.merges),
    }


def write_checkpoint(arch: Architecture, directory: str | os.PathLike[str], *, seed: int = 0,
                     progress: Progress | None = None, label: str | None = None) -> SynthResult:
    """Write ``arch`` as a BF16 checkpoint directory (replaced when complete; see the module doc)."""
    target, progress = Path(directory), progress or SilentProgress()
    if target.exists() and not target.is_dir():
        raise UsageError(f"cannot write a checkpoint to {target}: it is a file")
    t0 = time.perf_counter()
    vocab = tokenizer.build(arch.base_vocab, with_timestamp=bool(arch.classify_num), seed=seed)
    specs = tensors(arch)
    groups = shards(specs)
    silent = None if arch.classify_num else ~np.array(vocab.emittable(arch.text.vocab_size), dtype=bool)
    staging = target.with_name(f".{target.name}.part")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    names = ["model.safetensors"] if len(groups) == 1 else [f"model-{k:05d}-of-{len(groups):05d}.safetensors" for k in range(1, len(groups) + 1)]
    try:
        for name, text in _side_files(arch, vocab, seed).items():
            write_atomic(staging / name, text)
        progress.start(PROGRESS_KEY, sum(s.nbytes for s in specs), label=label or target.name)
        for name, group in zip(names, groups):
            with atomic_file(staging / name, "wb", fsync=False) as f:
                f.write(_header(group, seed))
                for spec in group:
                    for chunk in _chunks(spec, rng, silent):
                        f.write(chunk.tobytes())
                        progress.advance(PROGRESS_KEY, chunk.nbytes)
        if len(groups) > 1:
            index = {"metadata": {"total_size": sum(s.nbytes for s in specs)},
                     "weight_map": {s.name: name for name, group in zip(names, groups) for s in group}}
            write_atomic(staging / "model.safetensors.index.json", json.dumps(index, indent=2))
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        progress.stop()
    size = sum(p.stat().st_size for p in target.iterdir())
    return SynthResult(target, arch.name, "bf16", seed, size, sum(s.nbytes for s in specs), 0, len(specs),
                       sum(s.elements for s in specs), time.perf_counter() - t0)


def inspect_checkpoint(directory: str | os.PathLike[str]) -> dict[str, object]:
    """Check a checkpoint directory's safetensors headers against the files' sizes (never the weights):
    tensor count, bytes, dtypes, and whether it is synthetic. Raises `ModelFileError` for a bad one."""
    root = Path(directory)
    files = sorted(root.glob("*.safetensors")) if root.is_dir() else []
    if not files or not (root / "config.json").is_file():
        raise ModelFileError(f"{root} is not a checkpoint directory (config.json and *.safetensors)")
    count, weights, dtypes, synthetic = 0, 0, set(), False
    for path in files:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(8)
            (n,) = struct.unpack("<Q", head) if len(head) == 8 else (size,)
            if n > min(size - 8, 100 << 20):
                raise ModelFileError(f"{path} has a corrupt safetensors header")
            try:
                table = json.loads(fh.read(n))
            except ValueError:
                raise ModelFileError(f"{path} has an unreadable safetensors header") from None
        synthetic |= table.pop("__metadata__", {}).get("qasr_synthetic") == "true"
        end = max((int(v["data_offsets"][1]) for v in table.values()), default=0)
        if 8 + n + end > size:
            raise ModelFileError(f"{path} is truncated: its header needs {8 + n + end - size} more bytes")
        count += len(table)
        weights += end
        dtypes |= {str(v["dtype"]) for v in table.values()}
    return {"path": str(root), "format": "safetensors", "files": [p.name for p in files], "tensor_count": count,
            "weight_bytes": weights, "dtypes": sorted(dtypes), "synthetic": synthetic or root.name.endswith(SYNTHETIC_DIR_SUFFIX)}

