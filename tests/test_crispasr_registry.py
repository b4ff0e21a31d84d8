"""CrispASR's published GGUF files in the registry: pulled from a 127.0.0.1 server, checked by header,
size recorded on first download, refused when they are the wrong kind, format or synthetic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_qasr, sine
from modelfiles import model_bytes
from test_crispasr import TINY_ALIGNER_FULL, requires_crispasr
from test_download import FileServer, _cli_env, server  # noqa: F401  (the loopback server fixture)

from qasr.engine import registry
from qasr.engine.download import DownloadError, pull
from qasr.engine.modelfile import ModelKind
from qasr.engine.synth import TINY_ASR
from qasr.engine.synth import gguf as synth_gguf


def published_like(path: Path, monkeypatch: pytest.MonkeyPatch, arch=TINY_ASR) -> bytes:  # type: ignore[no-untyped-def]
    """A tiny GGUF without our synthetic marks: what a published file looks like to the checks."""
    made = synth_gguf.metadata
    with monkeypatch.context() as m:
        m.setattr(synth_gguf, "metadata", lambda *a: {**{k: v for k, v in made(*a).items() if not k.startswith("qasr.")},
                                                       "general.name": "Qwen3-ASR-0.6B"})  # fmt: skip
        return synth_gguf.write_gguf(arch, path, dtype="q8_0").path.read_bytes()


def test_the_entries() -> None:
    crisp = [m for m in registry.MODELS if m.file_format == "gguf"]
    assert {m.name for m in crisp} >= {"crispasr-qwen3-asr-0.6b-q4_k", "crispasr-qwen3-asr-1.7b-q4_k", "crispasr-qwen3-aligner-0.6b-q4_k"}
    for m in crisp:
        assert m.filename.endswith(".gguf") and m.urls[0].startswith("https://huggingface.co/cstr/") and m.urls[0].endswith("/" + m.filename)
        assert m.size is None and m.approx_size and m.to_dict()["format"] == "gguf"  # sizes are recorded on first download
    assert registry.get("qwen3-forced-aligner-0.6b-q4_k.gguf").kind is ModelKind.ALIGNER  # found by its file name too


def test_pull_checks_the_header_and_records_the_size(server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    asr = registry.get("crispasr-qwen3-asr-0.6b-q4_k")
    body = published_like(tmp_path / "src.gguf", monkeypatch)
    server.files["/" + asr.filename] = body
    models = tmp_path / "models"
    got = pull(asr, models, mirror=server.base, progress=False)
    assert got.path.read_bytes() == body and registry.read_records(models)[asr.name]["bytes"] == len(body)
    assert registry.local_state(asr, models).valid and pull(asr, models, mirror=server.base, progress=False).download is None
    r = run_qasr(["models", "list", "--json"], _cli_env(server, models))
    row = next(m for m in json.loads(r.stdout)["models"] if m["name"] == asr.name)
    assert row["format"] == "gguf" and row["local"]["status"] == "ok"


@pytest.mark.parametrize("what", ["aligner under an ASR name", "chatllm file", "synthetic", "truncated"])
def test_pull_refuses_what_is_not_the_published_file(server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                                     what: str) -> None:  # fmt: skip
    asr = registry.get("crispasr-qwen3-asr-0.6b-q4_k")
    body, words = {
        "aligner under an ASR name": (lambda: published_like(tmp_path / "a.gguf", monkeypatch, TINY_ALIGNER_FULL),
                                      "is a Qwen3-ForcedAligner model, but a Qwen3-ASR model is needed"),
        "chatllm file": (lambda: model_bytes(), "chatllm.cpp model file; CrispASR needs a GGUF"),
        "synthetic": (lambda: synth_gguf.write_gguf(TINY_ASR, tmp_path / "s.gguf").path.read_bytes(), "is a SYNTHETIC model"),
        "truncated": (lambda: published_like(tmp_path / "t.gguf", monkeypatch)[:3000], "truncated"),
    }[what]  # fmt: skip
    server.files["/" + asr.filename] = body()
    with pytest.raises(DownloadError, match=words):
        pull(asr, tmp_path / "models", mirror=server.base, progress=False)
    assert not (tmp_path / "models" / asr.filename).exists() and registry.read_records(tmp_path / "models") == {}


@requires_crispasr
def test_transcribe_by_registry_name(server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    import soundfile

    asr = registry.get("crispasr-qwen3-asr-0.6b-q4_k")
    server.files["/" + asr.filename] = published_like(tmp_path / "src.gguf", monkeypatch)
    models = tmp_path / "models"
    env = _cli_env(server, models)
    assert run_qasr(["models", "pull", asr.name], env).returncode == 0
    wav = tmp_path / "a.wav"
    soundfile.write(str(wav), sine(1.0), 16_000)
    r = run_qasr(["transcribe", str(wav), "--provider", "crispasr", "-m", asr.name, "-f", "json"], env)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["model"] == asr.filename and data["tokens"] > 0 and "SYNTHETIC" not in r.stderr
