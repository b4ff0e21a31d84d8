"""Read and check a GGUF model file (CrispASR's Qwen3-ASR format) in Python, before native code sees it.

ggml's GGUF reader trusts lengths and offsets it reads, so a truncated or foreign file can crash the
process that loads it. Every GGUF path the ``crispasr`` provider or the registry touches goes
through `inspect_gguf` first, as chatllm.cpp files go through `qasr.engine.modelfile`. The layout
(ggml ``docs/gguf.md``, version 3, little-endian):

* ``b"GGUF"``, ``u32 version``, ``u64 tensor_count``, ``u64 kv_count``;
* ``kv_count`` key/value pairs: a string key (``u64 length`` + UTF-8), ``u32 value type``, the value
  (scalars; strings; arrays as ``u32 item type``, ``u64 count``, the items);
* ``tensor_count`` tensor infos: name, ``u32 n_dims``, ``n_dims x u64`` sizes (ggml order: innermost
  first), ``u32 ggml type``, ``u64 offset`` into the data section;
* padding to ``general.alignment`` (32 by default), then the data section.

Walking the header tells whether every tensor's bytes are in the file without reading the weights.
A file is a Qwen3-ASR model when ``general.architecture`` is ``qwen3asr``; it is the ForcedAligner
when its output head is not one row per token (5,000 timestamp classes), as CrispASR's loader
decides. Files written by ``qasr models synth`` carry ``qasr.synthetic = true``.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from qasr.engine.modelfile import GGML_TYPES, SYNTHETIC_NOTE, ModelKind, open_model_file
from qasr.errors import ModelFileError

GGUF_MAGIC = b"GGUF"
GGUF_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
ARCHITECTURE = "qwen3asr"  # CrispASR's name for Qwen3-ASR and the ForcedAligner
SYNTHETIC_KEY = "qasr.synthetic"  # written by qasr.engine.synth.gguf
SYNTHETIC_SUFFIX = ".synthetic.gguf"

# GGUF value types -> struct format of a scalar (strings and arrays are handled apart).
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
SCALARS = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<?", U64: "<Q",
           I64: "<q", F64: "<d"}
_MAX_KV = 100_000
_MAX_TENSORS = 1_000_000
_MAX_STRING = 16 << 20
_MAX_ARRAY = 10_000_000
_MAX_DIMS = 4
#: Arrays longer than this are skipped, not kept (the vocabulary: 151,936 strings).
KEEP_ARRAY_ITEMS = 64


@dataclass(frozen=True)
class GgufTensor:
    name: str
    ne: tuple[int, ...]  # ggml order: innermost first
    ggml_type: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class GgufInfo:
    """What a GGUF file's header says, checked against its size."""

    path: Path
    file_bytes: int
    version: int
    architecture: str
    name: str
    kind: ModelKind
    dtype: str  # the commonest type among the 2-D weights (q4_k, q8_0, f16...)
    tensor_count: int
    weight_bytes: int
    data_offset: int
    metadata: dict[str, Any] = field(repr=False)  # scalars and short arrays; long arrays as their length
    tensors: dict[str, GgufTensor] = field(repr=False)
    synthetic: bool = False

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    @property
    def num_layers(self) -> int:
        return int(self.get(f"{ARCHITECTURE}.llm.n_layers", 0) or 0)

    @property
    def hidden_size(self) -> int:
        return int(self.get(f"{ARCHITECTURE}.llm.d_model", 0) or 0)

    def to_dict(self) -> dict[str, object]:
        return {"path": str(self.path), "format": "gguf", "file_bytes": self.file_bytes, "version": self.version,
                "architecture": self.architecture, "name": self.name, "kind": self.kind.value, "dtype": self.dtype,
                "tensor_count": self.tensor_count, "weight_bytes": self.weight_bytes, "num_layers": self.num_layers,
                "hidden_size": self.hidden_size, "synthetic": self.synthetic}


class _Reader:
    """Bounded reads: any length that would run past the file is a truncated file, never a huge read."""

    def __init__(self, f: BinaryIO, size: int, path: Path) -> None:
        self.f, self.size, self.path = f, size, path

    def exact(self, n: int, what: str) -> bytes:
        if n < 0 or self.f.tell() + n > self.size:
            raise ModelFileError(f"GGUF file is truncated ({what} cut short): {self.path}")
        return self.f.read(n)

    def scalar(self, fmt: str, what: str) -> Any:
        return struct.unpack(fmt, self.exact(struct.calcsize(fmt), what))[0]

    def string(self, what: str) -> str:
        n = self.scalar("<Q", what)
        if n > _MAX_STRING:
            raise ModelFileError(f"GGUF file has a corrupt {what} (length {n}): {self.path}")
        return self.exact(n, what).decode("utf-8", "replace")

    def value(self, vtype: int, what: str) -> Any:
        if vtype in SCALARS:
            return self.scalar(SCALARS[vtype], what)
        if vtype == STRING:
            return self.string(what)
        if vtype == ARRAY:
            item, count = self.scalar("<I", what), self.scalar("<Q", what)
            if count > _MAX_ARRAY or item == ARRAY:
                raise ModelFileError(f"GGUF file has a corrupt array in {what}: {self.path}")
            if item in SCALARS and count > KEEP_ARRAY_ITEMS:
                self.exact(count * struct.calcsize(SCALARS[item]), what)  # skipped by reading: bounded
                return count
            items = [self.value(item, what) for _ in range(count)]
            return items if count <= KEEP_ARRAY_ITEMS else count
        raise ModelFileError(f"GGUF file has unknown value type {vtype} in {what}: {self.path}")


def _tensor_bytes(ne: tuple[int, ...], type_id: int, name: str, path: Path) -> int:
    if type_id not in GGML_TYPES:
        raise ModelFileError(f"GGUF file has tensor {name!r} of unknown ggml type {type_id}: {path}")
    _, block, block_bytes = GGML_TYPES[type_id]
    if not ne or any(d <= 0 for d in ne) or ne[0] % block:
        raise ModelFileError(f"GGUF file has tensor {name!r} with bad shape {ne} for its type: {path}")
    rows = 1
    for d in ne[1:]:
        rows *= d
    return rows * (ne[0] // block) * block_bytes


def _dtype(tensors: dict[str, GgufTensor]) -> str:
    counts: dict[int, int] = {}
    for t in tensors.values():
        if len(t.ne) == 2:
            counts[t.ggml_type] = counts.get(t.ggml_type, 0) + t.nbytes
    if not counts:
        return "?"
    return GGML_TYPES[max(counts, key=lambda k: counts[k])][0]


def _kind(architecture: str, meta: dict[str, Any], tensors: dict[str, GgufTensor]) -> ModelKind:
    if architecture != ARCHITECTURE:
        return ModelKind.OTHER
    head = tensors.get("output.weight")
    vocab = meta.get(f"{ARCHITECTURE}.llm.vocab_size")
    if head is not None and len(head.ne) == 2 and isinstance(vocab, int) and head.ne[1] != vocab:
        return ModelKind.ALIGNER  # the timestamp head (5,000 classes) instead of one row per token
    return ModelKind.ASR


def inspect_gguf(path: str | os.PathLike[str]) -> GgufInfo:
    """Parse and verify a GGUF file's header and tensor table; raise `ModelFileError` if it is bad.

    Reads the header only (a few MB for the vocabulary), never the weights.
    """
    p, f, size = open_model_file(path)
    with f:
        r = _Reader(f, size, p)
        magic = f.read(4)
        if magic != GGUF_MAGIC:
            if magic == b"ggmm":
                raise ModelFileError(f"{p} is a chatllm.cpp model file; CrispASR needs a GGUF file (--provider qwen3-chatllm reads it)")
            raise ModelFileError(f"not a GGUF model file (bad magic {magic!r}): {p}")
        version = r.scalar("<I", "header")
        if version not in GGUF_VERSIONS:
            raise ModelFileError(f"unsupported GGUF version {version} (expected {' or '.join(map(str, GGUF_VERSIONS))}): {p}")
        n_tensors, n_kv = r.scalar("<Q", "header"), r.scalar("<Q", "header")
        if n_tensors > _MAX_TENSORS or n_kv > _MAX_KV:
            raise ModelFileError(f"GGUF header has implausible counts ({n_tensors} tensors, {n_kv} keys): {p}")
        meta: dict[str, Any] = {}
        for _ in range(n_kv):
            key = r.string("metadata key")
            meta[key] = r.value(r.scalar("<I", f"metadata {key!r}"), f"metadata {key!r}")
        infos = []
        for _ in range(n_tensors):
            name = r.string("tensor name")
            n_dims = r.scalar("<I", f"tensor {name!r}")
            if not 0 < n_dims <= _MAX_DIMS:
                raise ModelFileError(f"GGUF file has tensor {name!r} with {n_dims} dimensions: {p}")
            ne = tuple(r.scalar("<Q", f"tensor {name!r}") for _ in range(n_dims))
            type_id, offset = r.scalar("<I", f"tensor {name!r}"), r.scalar("<Q", f"tensor {name!r}")
            infos.append(GgufTensor(name, ne, type_id, offset, _tensor_bytes(ne, type_id, name, p)))
        alignment = meta.get("general.alignment", DEFAULT_ALIGNMENT)
        if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
            raise ModelFileError(f"GGUF file has a bad general.alignment ({alignment!r}): {p}")
        data = -(-f.tell() // alignment) * alignment
    tensors: dict[str, GgufTensor] = {}
    for t in infos:
        if t.offset % alignment:
            raise ModelFileError(f"GGUF file has tensor {t.name!r} at a misaligned offset: {p}")
        if data + t.offset + t.nbytes > size:
            raise ModelFileError(f"GGUF file is truncated: tensor {t.name!r} needs {data + t.offset + t.nbytes - size} "
                                 f"more bytes ({size} bytes on disk): {p}")
        tensors[t.name] = t
    if not tensors:
        raise ModelFileError(f"GGUF file holds no tensors: {p}")
    arch = str(meta.get("general.architecture", ""))
    synthetic = meta.get(SYNTHETIC_KEY) is True or p.name.endswith(SYNTHETIC_SUFFIX)
    return GgufInfo(p, size, version, arch, str(meta.get("general.name") or p.stem), _kind(arch, meta, tensors),
                    _dtype(tensors), len(tensors), sum(t.nbytes for t in tensors.values()), data, meta, tensors, synthetic)


def require_qwen3(info: GgufInfo, kind: ModelKind) -> GgufInfo:
    """Refuse a GGUF that is not CrispASR's Qwen3-ASR (or not the ``kind`` asked for), naming what it is."""
    if info.kind is ModelKind.OTHER:
        raise ModelFileError(f"{info.path} is a GGUF model for {info.architecture or 'an unknown architecture'!r}, "
                             f"not Qwen3-ASR ({ARCHITECTURE})")
    if info.kind is not kind:
        what = {ModelKind.ASR: "a Qwen3-ASR model", ModelKind.ALIGNER: "a Qwen3-ForcedAligner model"}
        raise ModelFileError(f"{info.path} is {what[info.kind]}, but {what[kind]} is needed here")
    return info


def is_gguf(path: str | os.PathLike[str]) -> bool:
    """True when the file starts with the GGUF magic (False for anything unreadable)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


def synthetic_note(info: GgufInfo) -> str | None:
    """The same words as `qasr.engine.modelfile.synthetic_notice` for a synthetic GGUF (None if real)."""
    return f"{info.path.name} is a {SYNTHETIC_NOTE}" if info.synthetic else None
