"""The model registry: its data against GUIDE.md §7, lookups, the models dir, local state, resolve_model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_qasr
from modelfiles import write_aligner, write_model

from qasr.engine import registry
from qasr.engine.modelfile import ModelKind
from qasr.errors import ModelFileError, UsageError


@pytest.fixture()
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "models"
    directory.mkdir()
    monkeypatch.setenv(registry.ENV_MODELS_DIR, str(directory))
    monkeypatch.delenv(registry.ENV_MIRROR, raising=False)
    return directory


# --- the data ---------------------------------------------------------------------------------

def test_published_files_with_the_sizes_chatllm_cpp_lists() -> None:
    by_file = {m.filename: m for m in registry.MODELS}
    assert by_file["qwen3-asr-0.6b.bin"].size == 1_005_656_864
    assert by_file["qwen3-asr-1.7b.bin"].size == 2_505_570_400
    assert by_file["qwen3-focedaligner-0.6b.bin"].size == 984_439_424  # (sic): the store's spelling
    assert by_file["qwen3-focedaligner-0.6b-f16.bin"].size == 1_840_552_064
    for q4 in ("qwen3-asr-0.6b-q4_0.bin", "qwen3-asr-1.7b-q4_0.bin", "qwen3-forced-aligner-0.6b-q4_0.bin"):
        assert by_file[q4].size is None and by_file[q4].approx_size  # unknown here: recorded on first download
        assert by_file[q4].urls == (f"https://huggingface.co/Luigi/Qwen3-ASR-0.6B-chatllm-quantized/resolve/main/{q4}",)
    assert by_file["qwen3-asr-0.6b.bin"].urls == (
        "https://modelscope.cn/api/v1/models/judd2024/chatllm_quantized_qwen3/repo?Revision=master&FilePath=qwen3-asr-0.6b.bin",
    )


def test_entries_are_consistent() -> None:
    names = registry.names()
    assert len(names) == len(set(names)) == len({m.filename for m in registry.MODELS})
    for m in registry.MODELS:
        assert m.filename.endswith({"ggmm": ".bin", "gguf": ".gguf"}[m.file_format]) and m.urls and all(u.startswith("https://") for u in m.urls)
        assert m.kind is (ModelKind.ALIGNER if "aligner" in m.name else ModelKind.ASR)
        assert m.name.endswith(m.quantization) and m.parameters in m.name.upper()
    assert {k: registry.get(v).kind for k, v in registry.DEFAULTS.items()} == {ModelKind.ASR: ModelKind.ASR, ModelKind.ALIGNER: ModelKind.ALIGNER}
    assert {"0.6B", "1.7B"} == {m.parameters for m in registry.MODELS if m.kind is ModelKind.ASR}


def test_lookup_by_name_or_store_file_name() -> None:
    assert registry.get("QWEN3-ASR-0.6B-Q4_0").name == "qwen3-asr-0.6b-q4_0"
    assert registry.find("qwen3-focedaligner-0.6b.bin").name == "qwen3-aligner-0.6b-q8_0"
    with pytest.raises(UsageError, match="unknown model 'whisper'.*qwen3-asr-0.6b-q4_0") as err:
        registry.get("whisper")
    assert err.value.exit_code == 2


# --- where files go, and mirrors --------------------------------------------------------------

def test_models_dir_default_env_and_explicit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(registry.ENV_MODELS_DIR, raising=False)
    monkeypatch.chdir(tmp_path)
    assert registry.models_dir() == tmp_path / "models"
    monkeypatch.setenv(registry.ENV_MODELS_DIR, "elsewhere")
    assert registry.models_dir() == tmp_path / "elsewhere"
    assert registry.models_dir(tmp_path / "x") == tmp_path / "x"


def test_mirror_replaces_every_source(monkeypatch: pytest.MonkeyPatch) -> None:
    m = registry.get("qwen3-aligner-0.6b-q8_0")
    monkeypatch.delenv(registry.ENV_MIRROR, raising=False)
    assert registry.source_urls(m) == m.urls
    assert registry.source_urls(m, "http://mirror.lan/qasr/") == ("http://mirror.lan/qasr/qwen3-focedaligner-0.6b.bin",)
    assert registry.source_urls(m, "http://m.lan/get?f={file}&x=1") == ("http://m.lan/get?f=qwen3-focedaligner-0.6b.bin&x=1",)
    monkeypatch.setenv(registry.ENV_MIRROR, "http://env.lan")
    assert registry.source_urls(m) == ("http://env.lan/qwen3-focedaligner-0.6b.bin",)


# --- local state ------------------------------------------------------------------------------

def test_local_state_missing_partial_valid_invalid(models: Path) -> None:
    asr = registry.get("qwen3-asr-0.6b-q4_0")
    path = models / asr.filename
    assert registry.local_state(asr).status == "missing"
    registry.partial_path(path).write_bytes(b"x" * 100)
    state = registry.local_state(asr)
    assert (state.status, state.partial_bytes) == ("partial", 100)
    write_model(path)
    state = registry.local_state(asr)
    assert state.valid and state.status == "ok" and state.size == path.stat().st_size and state.problem is None
    path.write_bytes(b"<html>rate limited</html>")
    state = registry.local_state(asr)
    assert state.status == "invalid" and "bad magic" in state.problem


def test_wrong_kind_and_wrong_recorded_size_are_invalid(models: Path) -> None:
    asr = registry.get("qwen3-asr-0.6b-q4_0")
    write_aligner(models / asr.filename)
    assert "Qwen3-ForcedAligner model, but a Qwen3-ASR model is needed" in registry.local_state(asr).problem
    write_model(models / asr.filename)
    size = (models / asr.filename).stat().st_size
    registry.record_download(models, asr, size + 1, "http://x/y")
    assert registry.expected_size(asr) == size + 1
    assert f"has {size:,} bytes, qwen3-asr-0.6b-q4_0 has {size + 1:,}" in registry.local_state(asr).problem
    registry.record_download(models, asr, size, "http://x/y")
    assert registry.local_state(asr).valid


def test_known_sizes_come_from_the_registry_and_a_corrupt_record_is_ignored(models: Path) -> None:
    q8 = registry.get("qwen3-asr-0.6b-q8_0")
    write_model(models / q8.filename)
    assert "1,005,656,864" in registry.local_state(q8).problem  # a tiny file is not the published one
    (models / registry.RECORD_FILE).write_text("{not json")
    assert registry.expected_size(registry.get("qwen3-asr-0.6b-q4_0")) is None
    assert registry.read_records(models) == {}


# --- resolve_model ----------------------------------------------------------------------------

def test_resolve_existing_path_wins(models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    own = write_model(tmp_path / "qwen3-asr-0.6b-q4_0")  # a file that happens to carry a registry name
    assert registry.resolve_model("qwen3-asr-0.6b-q4_0") == Path("qwen3-asr-0.6b-q4_0")
    assert registry.resolve_model(str(own)) == own


def test_resolve_registry_name_to_models_dir(models: Path) -> None:
    path = write_model(models / "qwen3-asr-0.6b-q4_0.bin")
    assert registry.resolve_model("qwen3-asr-0.6b-q4_0") == path
    assert registry.resolve_model("qwen3-asr-0.6b-q4_0.bin") == path  # the store's file name works too


def test_resolve_known_but_absent_says_how_to_pull(models: Path) -> None:
    with pytest.raises(ModelFileError, match=r"not downloaded .*download it with: qasr models pull qwen3-asr-1.7b-q8_0") as err:
        registry.resolve_model("qwen3-asr-1.7b-q8_0")
    assert err.value.exit_code == 2
    registry.partial_path(models / "qwen3-asr-1.7b.bin").write_bytes(b"x")
    with pytest.raises(ModelFileError, match="resume its download with: qasr models pull qwen3-asr-1.7b-q8_0"):
        registry.resolve_model("qwen3-asr-1.7b-q8_0")


def test_resolve_neither_file_nor_name(models: Path) -> None:
    with pytest.raises(ModelFileError) as err:
        registry.resolve_model("qwen3-asr-9b")
    msg = str(err.value)
    assert "'qwen3-asr-9b' is neither a model file nor a known model name" in msg
    assert all(name in msg for name in registry.names()) and "qasr models pull NAME" in msg
    with pytest.raises(ModelFileError, match="model file not found: models/typo.bin"):
        registry.resolve_model("models/typo.bin")  # looks like a path: say the file is missing


# --- CLI (list and path; pull is in test_download.py) -----------------------------------------

def _env(directory: Path) -> dict[str, str]:
    import os

    return {**os.environ, registry.ENV_MODELS_DIR: str(directory)}


def test_cli_list_json_and_text(models: Path) -> None:
    write_model(models / "qwen3-asr-0.6b-q4_0.bin")
    (models / "qwen3-asr-1.7b.bin").write_bytes(b"GGUF" + b"\0" * 60)
    r = run_qasr(["models", "list", "--json"], _env(models))
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["models_dir"] == str(models)
    rows = {row["name"]: row for row in doc["models"]}
    assert set(rows) == set(registry.names())
    assert rows["qwen3-asr-0.6b-q4_0"]["local"]["status"] == "ok" and rows["qwen3-asr-0.6b-q4_0"]["default"] is True
    assert rows["qwen3-asr-1.7b-q8_0"]["local"]["status"] == "invalid"
    assert {"kind", "quantization", "size", "filename", "urls", "parameters"} <= rows["qwen3-asr-0.6b-q8_0"].keys()
    r = run_qasr(["models", "list"], _env(models))
    assert r.returncode == 0
    line = next(x for x in r.stdout.splitlines() if x.startswith("qwen3-asr-0.6b-q8_0"))
    assert line.split() == ["qwen3-asr-0.6b-q8_0", "asr", "q8_0", "0.6B", "1.01", "GB", "missing"]
    assert "GGUF" in r.stderr  # why the invalid one is invalid


def test_cli_path_prints_or_exits_2_with_a_hint(models: Path) -> None:
    path = write_model(models / "qwen3-asr-0.6b-q4_0.bin")
    r = run_qasr(["models", "path", "qwen3-asr-0.6b-q4_0"], _env(models))
    assert (r.returncode, r.stdout) == (0, f"{path}\n")
    r = run_qasr(["models", "path", "qwen3-aligner-0.6b-q4_0"], _env(models))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == (
        f"qasr: error: qwen3-aligner-0.6b-q4_0 is not downloaded (expected {models}/qwen3-forced-aligner-0.6b-q4_0.bin); "
        "run: qasr models pull qwen3-aligner-0.6b-q4_0"
    )
    path.write_bytes(b"junk")
    r = run_qasr(["models", "path", "qwen3-asr-0.6b-q4_0"], _env(models))
    assert r.returncode == 2 and "qasr models pull qwen3-asr-0.6b-q4_0 --force" in r.stderr
    r = run_qasr(["models", "path", "nope"], _env(models))
    assert r.returncode == 2 and "unknown model 'nope'" in r.stderr and "Traceback" not in r.stderr
