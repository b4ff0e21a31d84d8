"""Read and check a chatllm.cpp model file in Python, before native code ever sees it.

chatllm.cpp aborts or reads out of bounds on a truncated or foreign file, so every path goes through
`inspect_model_file` first. The layout (chatllm.cpp ``src/models.cpp: load_file_header`` and
``src/chat.cpp: ModelLoader::load_all_tensors``) is:

* ``b"ggmm"``, ``u32 version`` (1), ``u32 offset_config``, ``u32 offset_tokenizer``, ``u32 offset_tensors``;
* a NUL-padded JSON "meta" block up to ``offset_config`` (the Hugging Face configs, model name; files
  written by ``qasr models synth`` also carry ``"qasr_synthetic": {"synthetic": true, ...}``);
* at ``offset_config``: ``i32 model_type``, ``i32 model_version``, then ``BaseConfig`` (11 x i32);
* at ``offset_tensors`` to the end of the file, one record per tensor: ``i32 name_len``, name,
  ``i32 ndim``, ``ndim x i32`` dims (outermost first), ``i32 ggml_type``, padding to 16 bytes, data.

Walking the tensor table tells us whether the file is complete without reading the weights.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import BinaryIO

from qasr.errors import ModelFileError, warn_on_stderr

GGMM_MAGIC = b"ggmm"
GGMM_VERSION = 1
TENSOR_ALIGNMENT = 16
SYNTHETIC_META_KEY = "qasr_synthetic"  # written by qasr.engine.synth: random weights, real shapes
SYNTHETIC_SUFFIX = ".synthetic.bin"

# Model type ids from chatllm.cpp (src/models_priv.h, models/qwen.cpp).
MODEL_TYPE_QWEN3_ASR = 0x1000010F
MODEL_TYPE_QWEN3_FORCED_ALIGNER = 0x04000002

# ggml type id -> (name, block size in elements, bytes per block); ggml/include/ggml.h, ggml.c.
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("f32", 1, 4),
    1: ("f16", 1, 2),
    2: ("q4_0", 32, 18),
    3: ("q4_1", 32, 20),
    6: ("q5_0", 32, 22),
    7: ("q5_1", 32, 24),
    8: ("q8_0", 32, 34),
    9: ("q8_1", 32, 36),
    10: ("q2_k", 256, 84),
    11: ("q3_k", 256, 110),
    12: ("q4_k", 256, 144),
    13: ("q5_k", 256, 176),
    14: ("q6_k", 256, 210),
    15: ("q8_k", 256, 292),
    24: ("i8", 1, 1),
    25: ("i16", 1, 2),
    26: ("i32", 1, 4),
    27: ("i64", 1, 8),
    28: ("f64", 1, 8),
    30: ("bf16", 1, 2),
}

_HEADER = struct.Struct("<4sIIII")
_BASE_CONFIG = struct.Struct("<ii11i")  # model_type, model_version, BaseConfig
_MAX_META_BYTES = 64 * 1024 * 1024
_MAX_NAME_BYTES = 4096
_MAX_DIMS = 4


class ModelKind(str, Enum):
    """What a file is for; decides which pipeline may load it."""

    ASR = "asr"
    ALIGNER = "aligner"
    OTHER = "other"


@dataclass(frozen=True)
class ModelFileInfo:
    """What the header of a chatllm.cpp model file says, checked for consistency."""

    path: Path
    file_bytes: int
    kind: ModelKind
    model_type: int
    model_version: int
    name: str
    dtype: str
    context_length: int
    vocab_size: int
    hidden_size: int
    num_layers: int
    tensor_count: int
    weight_bytes: int
    languages: tuple[str, ...] = field(default_factory=tuple)
    synthetic: bool = False  # random weights (qasr models synth): for measurements, never for transcripts

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready view (paths and enums as strings)."""
        return {
            "path": str(self.path),
            "file_bytes": self.file_bytes,
            "kind": self.kind.value,
            "model_type": f"0x{self.model_type:08x}",
            "model_version": self.model_version,
            "name": self.name,
            "dtype": self.dtype,
            "context_length": self.context_length,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "tensor_count": self.tensor_count,
            "weight_bytes": self.weight_bytes,
            "languages": list(self.languages),
            "synthetic": self.synthetic,
        }


def _kind_of(model_type: int) -> ModelKind:
    if model_type == MODEL_TYPE_QWEN3_ASR:
        return ModelKind.ASR
    if model_type == MODEL_TYPE_QWEN3_FORCED_ALIGNER:
        return ModelKind.ALIGNER
    return ModelKind.OTHER


def _read_exact(f, n: int, path: Path, what: str) -> bytes:  # type: ignore[no-untyped-def]
    data = f.read(n)
    if len(data) != n:
        raise ModelFileError(f"model file is truncated ({what} cut short): {path}")
    return data


def _tensor_bytes(dims: tuple[int, ...], type_id: int, path: Path, name: str) -> int:
    if type_id not in GGML_TYPES:
        raise ModelFileError(f"model file has tensor {name!r} of unknown ggml type {type_id}: {path}")
    _, block, block_bytes = GGML_TYPES[type_id]
    if any(d <= 0 for d in dims):
        raise ModelFileError(f"model file has tensor {name!r} with bad shape {dims}: {path}")
    innermost = dims[-1]
    if innermost % block:
        raise ModelFileError(f"model file has tensor {name!r} whose row {innermost} is not a whole block: {path}")
    rows = 1
    for d in dims[:-1]:
        rows *= d
    return rows * (innermost // block) * block_bytes


def _parse_meta(raw: bytes, path: Path) -> dict:
    text = raw.rstrip(b"\0")
    if not text:
        return {}
    try:
        meta = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"model file has a corrupt metadata block ({exc.__class__.__name__}): {path}") from None
    if not isinstance(meta, dict):
        raise ModelFileError(f"model file metadata is not a JSON object: {path}")
    return meta


def _languages(meta: dict) -> tuple[str, ...]:
    config = meta.get("config.json")
    if isinstance(config, dict):
        langs = config.get("support_languages")
        if isinstance(langs, list):
            return tuple(str(x) for x in langs)
    return ()


#: What a synthetic model is, in the words every report, listing and warning uses.
SYNTHETIC_NOTE = ("SYNTHETIC model (random weights, the published shapes): for speed and memory figures only, "
                  "its transcripts are meaningless")


def synthetic_notice(info: ModelFileInfo, max_tokens: int | None) -> str | None:
    """The warning a command prints before it runs a synthetic model (None for a real one).

    Said once, where the model is loaded, so transcribe, stream and serve say the same thing; it
    names the token cap because a synthetic model never stops decoding by itself.
    """
    if not info.synthetic:
        return None
    cap = (f"each engine call stops after {max_tokens} tokens" if max_tokens
           else "it never stops by itself, so each engine call decodes to the context length (cap it: --max-tokens N)")
    return f"{info.path.name} is a {SYNTHETIC_NOTE}; {cap}"


def warn_if_synthetic(info: ModelFileInfo | None, max_tokens: int | None) -> None:
    """Print `synthetic_notice` on stderr when ``info`` is a synthetic model: what every command
    that loads an ASR model does before running it."""
    notice = synthetic_notice(info, max_tokens) if info is not None else None
    if notice:
        warn_on_stderr(notice)


def _is_synthetic(meta: dict, path: Path) -> bool:
    """Marked in the metadata, or named like one (a file renamed away from its suffix keeps its mark)."""
    mark = meta.get(SYNTHETIC_META_KEY)
    return (isinstance(mark, dict) and bool(mark.get("synthetic"))) or path.name.endswith(SYNTHETIC_SUFFIX)


def open_model_file(path: str | os.PathLike[str]) -> tuple[Path, BinaryIO, int]:
    """(path, open binary file, size): the checks every model format starts with (it exists, is a
    file, opens, is not empty), each a `ModelFileError` naming the path."""
    p = Path(path)
    if not p.exists():
        raise ModelFileError(f"model file not found: {p}")
    if p.is_dir():
        raise ModelFileError(f"model path is a directory, not a file: {p}")
    try:
        f = p.open("rb")
    except OSError as exc:
        raise ModelFileError(f"cannot open model file ({exc.strerror}): {p}") from None
    size = os.fstat(f.fileno()).st_size
    if size == 0:
        f.close()
        raise ModelFileError(f"model file is empty: {p}")
    return p, f, size


def inspect_model_file(path: str | os.PathLike[str]) -> ModelFileInfo:
    """Parse and verify a model file's header and tensor table; raise `ModelFileError` if it is bad.

    Reads only headers (a few KB plus one small record per tensor), never the weights.
    """
    p, f, size = open_model_file(path)
    with f:
        head = f.read(_HEADER.size)
        if head[:4] != GGMM_MAGIC:
            if head[:4] == b"GGUF":
                raise ModelFileError(f"{p} is a GGUF file; chatllm.cpp needs its own format (convert with its convert.py)")
            if head[:4] == b"ggml":
                raise ModelFileError(f"{p} is an old-format chatllm.cpp file (ggml); Qwen3-ASR needs a ggmm file")
            raise ModelFileError(f"not a chatllm.cpp model file (bad magic {head[:4]!r}): {p}")
        if len(head) < _HEADER.size:
            raise ModelFileError(f"model file is truncated (header cut short): {p}")
        _, version, off_config, off_tokenizer, off_tensors = _HEADER.unpack(head)
        if version != GGMM_VERSION:
            raise ModelFileError(f"unsupported chatllm.cpp file version {version} (expected {GGMM_VERSION}): {p}")
        if not (_HEADER.size <= off_config <= off_tokenizer <= off_tensors):
            raise ModelFileError(f"model file header has inconsistent offsets: {p}")
        if off_tensors > size:
            raise ModelFileError(f"model file is truncated (header says {off_tensors} bytes before the weights, file has {size}): {p}")
        if off_config - _HEADER.size > _MAX_META_BYTES:
            raise ModelFileError(f"model file metadata block is implausibly large: {p}")
        meta = _parse_meta(_read_exact(f, off_config - _HEADER.size, p, "metadata"), p)

        model_type, model_version, *cfg = _BASE_CONFIG.unpack(_read_exact(f, _BASE_CONFIG.size, p, "config"))
        dtype_id, vocab, hidden, _heads, layers, _inter, max_length = cfg[:7]

        f.seek(off_tensors)
        pos, count, weights = off_tensors, 0, 0
        while pos < size:
            (name_len,) = struct.unpack("<i", _read_exact(f, 4, p, "tensor record"))
            if not 0 < name_len <= _MAX_NAME_BYTES:
                raise ModelFileError(f"model file has a corrupt tensor record at byte {pos}: {p}")
            name = _read_exact(f, name_len, p, "tensor name").decode("utf-8", "replace")
            (ndim,) = struct.unpack("<i", _read_exact(f, 4, p, "tensor record"))
            if not 0 < ndim <= _MAX_DIMS:
                raise ModelFileError(f"model file has tensor {name!r} with {ndim} dimensions: {p}")
            dims = struct.unpack(f"<{ndim}i", _read_exact(f, 4 * ndim, p, "tensor shape"))
            (type_id,) = struct.unpack("<i", _read_exact(f, 4, p, "tensor type"))
            nbytes = _tensor_bytes(dims, type_id, p, name)
            data_start = (f.tell() + TENSOR_ALIGNMENT - 1) & ~(TENSOR_ALIGNMENT - 1)
            pos = data_start + nbytes
            if pos > size:
                raise ModelFileError(
                    f"model file is truncated: tensor {name!r} needs {pos - size} more bytes ({size} bytes on disk): {p}"
                )
            f.seek(pos)
            count += 1
            weights += nbytes
        if count == 0:
            raise ModelFileError(f"model file holds no tensors: {p}")

    name = meta.get("model_name") if isinstance(meta.get("model_name"), str) else p.stem
    return ModelFileInfo(
        path=p,
        file_bytes=size,
        kind=_kind_of(model_type),
        model_type=model_type,
        model_version=model_version,
        name=str(name),
        dtype=GGML_TYPES.get(dtype_id, (f"type{dtype_id}", 1, 1))[0],
        context_length=max_length,
        vocab_size=vocab,
        hidden_size=hidden,
        num_layers=layers,
        tensor_count=count,
        weight_bytes=weights,
        languages=_languages(meta),
        synthetic=_is_synthetic(meta, p),
    )


def require_kind(info: ModelFileInfo, kind: ModelKind) -> ModelFileInfo:
    """Refuse a file meant for another pipeline, naming what it is and what was expected."""
    if info.kind is not kind:
        what = {ModelKind.ASR: "a Qwen3-ASR model", ModelKind.ALIGNER: "a Qwen3-ForcedAligner model"}
        found = what.get(info.kind, f"model type 0x{info.model_type:08x} ({info.name})")
        raise ModelFileError(f"{info.path} is {found}, but {what[kind]} is needed here")
    return info
