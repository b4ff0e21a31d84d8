"""Model files are checked in Python before native code sees them."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SHARED_MODELS
from modelfiles import model_bytes, write_model

from qasr.engine.modelfile import (
    ModelKind,
    inspect_model_file,
    require_kind,
)
from qasr.errors import ModelFileError


def test_valid_file_is_described(asr_model_file: Path) -> None:
    info = inspect_model_file(asr_model_file)
    assert info.kind is ModelKind.ASR
    assert info.name == "test-asr"
    assert info.tensor_count == 2
    assert info.weight_bytes == 4 * 32 * 4 + 2 * 64 // 32 * 18
    assert "English" in info.languages
    assert info.context_length == 65536
    assert info.to_dict()["model_type"] == "0x1000010f"


def test_aligner_is_recognised_and_refused_as_asr(aligner_model_file: Path) -> None:
    info = inspect_model_file(aligner_model_file)
    assert info.kind is ModelKind.ALIGNER
    with pytest.raises(ModelFileError, match="ForcedAligner model, but a Qwen3-ASR model is needed"):
        require_kind(info, ModelKind.ASR)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b[: len(b) - 7], "truncated: tensor 'b.weight' needs 7 more bytes"),
        (lambda b: b[:10], "truncated"),
        (lambda b: b"GGUF" + b[4:], "GGUF file"),
        (lambda b: b"ggml" + b[4:], "old-format"),
        (lambda b: b"\x7fELF" + b[4:], "bad magic"),
        (lambda b: b[:4] + b"\x02\0\0\0" + b[8:], "unsupported chatllm.cpp file version 2"),
        (lambda b: b"", "empty"),
    ],
)
def test_broken_files_are_refused(tmp_path: Path, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "m.bin"
    path.write_bytes(mutate(model_bytes()))
    with pytest.raises(ModelFileError, match=message):
        inspect_model_file(path)


def test_corrupt_metadata_is_refused(tmp_path: Path) -> None:
    path = write_model(tmp_path / "m.bin", meta=b"{not json")
    with pytest.raises(ModelFileError, match="corrupt metadata"):
        inspect_model_file(path)


def test_unknown_tensor_type_is_refused(tmp_path: Path) -> None:
    path = write_model(tmp_path / "m.bin", tensors=[("x", (4, 32), 99)])
    with pytest.raises(ModelFileError, match="unknown ggml type 99"):
        inspect_model_file(path)


def test_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="not found"):
        inspect_model_file(tmp_path / "nope.bin")
    with pytest.raises(ModelFileError, match="directory"):
        inspect_model_file(tmp_path)


def test_other_model_type_named(tmp_path: Path) -> None:
    info = inspect_model_file(write_model(tmp_path / "llm.bin", 0x123, name="some-llm"))
    assert info.kind is ModelKind.OTHER
    with pytest.raises(ModelFileError, match="model type 0x00000123 \\(some-llm\\)"):
        require_kind(info, ModelKind.ASR)


@pytest.mark.skipif(not SHARED_MODELS.is_dir(), reason="../shared/models is absent")
@pytest.mark.parametrize(
    ("name", "kind", "size"),
    [
        ("tiny-asr-a-q4_0.bin", ModelKind.ASR, 346_672),
        ("tiny-asr-b-q4_0.bin", ModelKind.ASR, 854_256),
        ("tiny-aligner-q4_0.bin", ModelKind.ALIGNER, 453_168),
    ],
)
def test_shared_tiny_models(name: str, kind: ModelKind, size: int) -> None:
    info = inspect_model_file(SHARED_MODELS / name)
    assert info.kind is kind
    assert info.file_bytes == size
    assert info.dtype == "q4_0"
    assert 0 < info.weight_bytes < size
    assert len(info.languages) == 30


@pytest.mark.skipif(not SHARED_MODELS.is_dir(), reason="../shared/models is absent")
def test_truncated_shared_model(tmp_path: Path) -> None:
    data = (SHARED_MODELS / "tiny-asr-a-q4_0.bin").read_bytes()
    cut = tmp_path / "cut.bin"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated"):
        inspect_model_file(cut)
