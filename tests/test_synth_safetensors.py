"""Synthetic BF16 checkpoints in the official Hugging Face layout (`qasr.engine.synth.safetensors`).

The names and shapes are checked against the tiny checkpoints in ../shared/models/hf, which the
official qwen-asr transformers classes load with no missing or unexpected tensor (their README).
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_MODELS

from qasr.engine.synth import QWEN3_ALIGNER_06B, QWEN3_ASR_06B, QWEN3_ASR_17B, TINY_ASR
from qasr.engine.synth import safetensors as st
from qasr.engine.synth import tokenizer as synth_tokenizer
from qasr.errors import ModelFileError


def header(path: Path) -> dict:  # type: ignore[type-arg]
    with path.open("rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        return json.loads(fh.read(n))


def tensor(path: Path, name: str) -> np.ndarray:
    """A BF16 tensor read back as float32 (bf16 is float32's top half)."""
    table = header(path)
    a, b = table[name]["data_offsets"]
    with path.open("rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        fh.seek(8 + n + a)
        raw = np.frombuffer(fh.read(b - a), dtype=np.uint16)
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(table[name]["shape"])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return st.write_checkpoint(TINY_ASR, tmp_path_factory.mktemp("hf") / "tiny.synthetic", seed=2).path


@pytest.mark.skipif(not (SHARED_MODELS / "hf" / "tiny-asr-a").is_dir(), reason="needs ../shared/models/hf")
def test_names_and_shapes_are_the_official_checkpoints(tiny: Path) -> None:
    ours = {k: v["shape"] for k, v in header(tiny / "model.safetensors").items() if k != "__metadata__"}
    theirs = {k: v["shape"] for k, v in header(SHARED_MODELS / "hf" / "tiny-asr-a" / "model.safetensors").items() if k != "__metadata__"}
    assert ours == theirs
    config, reference = (json.loads((d / "config.json").read_text()) for d in (tiny, SHARED_MODELS / "hf" / "tiny-asr-a"))
    for part in ("audio_config", "text_config"):
        assert set(reference["thinker_config"][part]) <= set(config["thinker_config"][part])
        assert {k: config["thinker_config"][part][k] for k in ("d_model", "hidden_size") if k in reference["thinker_config"][part]} == \
               {k: reference["thinker_config"][part][k] for k in ("d_model", "hidden_size") if k in reference["thinker_config"][part]}


def test_the_directory_is_complete_marked_and_reproducible(tiny: Path, tmp_path: Path) -> None:
    assert {p.name for p in tiny.iterdir()} == {"config.json", "generation_config.json", "preprocessor_config.json",
                                                 "tokenizer_config.json", "vocab.json", "merges.txt", "model.safetensors"}  # fmt: skip
    info = st.inspect_checkpoint(tiny)
    assert info["synthetic"] is True and info["dtypes"] == ["BF16"] and info["tensor_count"] == len(st.tensors(TINY_ASR))
    assert header(tiny / "model.safetensors")["__metadata__"] == {"format": "pt", "qasr_synthetic": "true", "seed": "2"}
    config = json.loads((tiny / "config.json").read_text())
    assert config["qasr_synthetic"]["synthetic"] is True and config["torch_dtype"] == "bfloat16"
    vocab = json.loads((tiny / "vocab.json").read_text())
    assert len(vocab) == TINY_ASR.base_vocab and vocab["Ġ"] == synth_tokenizer.byte_alphabet().index("Ġ")
    merges = (tiny / "merges.txt").read_text().splitlines()
    assert merges[0].startswith("#version") and len(merges) - 1 == TINY_ASR.base_vocab - 256
    again = st.write_checkpoint(TINY_ASR, tmp_path / "again.synthetic", seed=2).path
    for name in ("model.safetensors", "vocab.json", "config.json"):
        assert hashlib.sha256((tiny / name).read_bytes()).digest() == hashlib.sha256((again / name).read_bytes()).digest()


def test_values_are_bf16_of_the_planned_spread_and_stop_rows_are_zero(tiny: Path) -> None:
    q = tensor(tiny / "model.safetensors", "thinker.model.layers.0.self_attn.q_proj.weight")
    assert abs(q.std() * np.sqrt(q.shape[1]) - 1.0) < 0.1 and abs(q.mean()) < 0.02
    norm = tensor(tiny / "model.safetensors", "thinker.model.norm.weight")
    assert abs(norm.mean() - 1.0) < 0.01
    base = TINY_ASR.base_vocab
    for name in ("thinker.model.embed_tokens.weight", "thinker.lm_head.weight"):  # tied in some engines: both are muted
        rows = tensor(tiny / "model.safetensors", name)
        assert not rows[base + synth_tokenizer.IM_END].any() and rows[300].any()


def test_bf16_rounds_to_nearest_even() -> None:
    values = np.array([1.0, 1.00390625, 1.01171875, -2.5, 3.0e-3], dtype=np.float32)  # 1 + 2^-8 is a tie: stays at 1
    back = (st._bf16(values).astype(np.uint32) << 16).view(np.float32)
    assert back.tolist() == [1.0, 1.0, 1.015625, -2.5, pytest.approx(3.0e-3, rel=4e-3)]


def test_large_checkpoints_are_sharded_with_an_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert [len(g) for g in st.shards(st.tensors(QWEN3_ASR_06B))] == [len(st.tensors(QWEN3_ASR_06B))]  # 1.9 GB: one file
    big = st.shards(st.tensors(QWEN3_ASR_17B))
    assert len(big) == 2 and sum(s.nbytes for g in big for s in g) == pytest.approx(4.7e9, rel=0.01)  # as published
    assert {s.name: s.dims for s in st.tensors(QWEN3_ALIGNER_06B)}["thinker.lm_head.weight"] == (5000, 1024)
    monkeypatch.setattr(st, "MAX_SHARD_BYTES", 400_000)
    out = st.write_checkpoint(TINY_ASR, tmp_path / "sharded.synthetic", seed=2).path
    files = sorted(p.name for p in out.glob("*.safetensors"))
    assert len(files) >= 2 and files[0] == f"model-00001-of-{len(files):05d}.safetensors"
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == {s.name for s in st.tensors(TINY_ASR)} and set(index["weight_map"].values()) == set(files)
    assert st.inspect_checkpoint(out)["tensor_count"] == len(index["weight_map"])


def test_a_bad_checkpoint_is_refused(tiny: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{}")
    data = (tiny / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated"):
        st.inspect_checkpoint(bad)
    with pytest.raises(ModelFileError, match="not a checkpoint directory"):
        st.inspect_checkpoint(tmp_path / "nothing")


def test_the_safetensors_library_reads_it(tiny: Path) -> None:
    safetensors = pytest.importorskip("safetensors")
    with safetensors.safe_open(str(tiny / "model.safetensors"), framework="numpy") as f:
        assert set(f.keys()) == {s.name for s in st.tensors(TINY_ASR)} and f.metadata()["qasr_synthetic"] == "true"
