"""Write small but well-formed chatllm.cpp (ggmm) model files for tests, and broken variants.

The layout mirrors what `qasr.engine.modelfile` documents; the test double reads the same header, so
these files load in the double exactly like the shared tiny models load in the real engine.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from qasr.engine.modelfile import MODEL_TYPE_QWEN3_ASR, MODEL_TYPE_QWEN3_FORCED_ALIGNER

LANGUAGES = ["Chinese", "English", "Cantonese", "French", "German", "Japanese"]


def model_bytes(
    model_type: int = MODEL_TYPE_QWEN3_ASR,
    *,
    name: str = "test-asr",
    languages: list[str] | None = None,
    tensors: list[tuple[str, tuple[int, ...], int]] | None = None,
    version: int = 1,
    meta: bytes | None = None,
) -> bytes:
    """A complete ggmm file: header, JSON meta, config, and tensors (f32 = 0, q4_0 = 2)."""
    if meta is None:
        meta = json.dumps(
            {"model_name": name, "config.json": {"support_languages": languages or LANGUAGES}}
        ).encode()
    meta = meta + b"\0" * (-len(meta) % 16)
    off_config = 20 + len(meta)
    config = struct.pack("<ii11i", model_type, 1, 2, 2048, 64, 2, 2, 128, 65536, 1984, 1986, -1, -1)
    off_tensors = off_config + len(config)
    body = bytearray()
    for tname, dims, dtype in tensors or [("a.weight", (4, 32), 0), ("b.weight", (2, 64), 2)]:
        enc = tname.encode()
        body += struct.pack("<i", len(enc)) + enc + struct.pack("<i", len(dims))
        body += struct.pack(f"<{len(dims)}i", *dims) + struct.pack("<i", dtype)
        pos = off_tensors + len(body)
        body += b"\0" * (-pos % 16)
        n = 1
        for d in dims:
            n *= d
        body += b"\x01" * (n * 4 if dtype == 0 else n // 32 * 18)
    header = b"ggmm" + struct.pack("<IIII", version, off_config, off_config, off_tensors)
    return header + meta + config + bytes(body)


def write_model(path: Path, model_type: int = MODEL_TYPE_QWEN3_ASR, **kw: object) -> Path:
    path.write_bytes(model_bytes(model_type, **kw))  # type: ignore[arg-type]
    return path


def write_aligner(path: Path) -> Path:
    return write_model(path, MODEL_TYPE_QWEN3_FORCED_ALIGNER, name="test-aligner")
