"""Providers: the contract (both providers), the fallback chain (order and messages), the CLI's --provider.

faster-whisper runs for real on a tiny random-weight model built at test time (tests/whisper_tiny.py:
CTranslate2's spec API, no torch, no network), whose planted chain makes it say a known text for
any audio. Qwen3-ASR runs on the test double (never presented as the engine).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from conftest import double_env, run_qasr
from qasr.errors import EngineError, EngineNotFound, ModelFileError, NoProviderAvailable, QasrError, UsageError
from qasr.pipeline.results import TranscriptionResult
from qasr.providers import Provider, ProviderOptions, make_provider, parse_spec, providers_for
from qasr.spec import CallOptions, EngineSpec
from qasr.providers import chain

CHINESE_TEXT = "我的电话 是 一三八零"


@pytest.fixture(scope="session")
def tiny_whisper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("faster_whisper")
    from whisper_tiny import build

    return build(tmp_path_factory.mktemp("whisper") / "tiny")


@pytest.fixture(scope="session")
def tiny_whisper_zh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("faster_whisper")
    from whisper_tiny import build

    return build(tmp_path_factory.mktemp("whisper-zh") / "tiny", text=CHINESE_TEXT)


@pytest.fixture()
def whisper(tiny_whisper: Path) -> Provider:
    return make_provider(EngineSpec(provider="faster-whisper", whisper_model=str(tiny_whisper)))


# -- the contract, on faster-whisper ---------------------------------------------------------------


def test_faster_whisper_meets_the_provider_contract(whisper: Provider, wav_file: Path) -> None:
    from whisper_tiny import TEXT

    assert isinstance(whisper, Provider) and whisper.name == "faster-whisper" and whisper.streams is False
    first = whisper.transcribe(wav_file)
    assert isinstance(first, TranscriptionResult)
    assert first.text == first.asr_text == TEXT and first.language == "English"
    assert [s.text for s in first.segments] == [TEXT] and first.segments[0].start == 0.0
    assert first.figures.load_seconds == round(whisper.load_seconds, 4) > 0
    assert first.figures.audio_seconds == 1.0 and first.figures.rtf > 0 and first.figures.ttft_seconds is None
    assert first.figures.tokens == len(TEXT.split()) + 2  # the words and two timestamps
    second = whisper.transcribe(str(wav_file))
    assert second.figures.load_seconds == 0.0 and second.text == TEXT
    assert whisper.describe()["model"] == str(whisper.source)  # type: ignore[attr-defined]
    whisper.close()
    whisper.close()
    with pytest.raises(QasrError, match="closed"):
        whisper.transcribe(wav_file)


def test_faster_whisper_stream_yields_segments_then_the_result(whisper: Provider, wav_file: Path) -> None:
    stream = whisper.stream(wav_file)
    assert stream.result is None
    pieces = list(stream)
    assert stream.result is not None and "".join(pieces).strip() == stream.result.asr_text


def test_faster_whisper_gets_the_same_post_processing(tiny_whisper_zh: Path, wav_file: Path) -> None:
    from qasr.text.post import postprocess

    spec = EngineSpec(provider="faster-whisper", whisper_model=str(tiny_whisper_zh), language="Chinese")
    result = make_provider(spec, CallOptions(itn=True, opencc="s2twp")).transcribe(wav_file)
    assert result.asr_text == CHINESE_TEXT and result.language == "Chinese"
    assert result.text == postprocess(CHINESE_TEXT, itn=True, opencc="s2twp", language="zh") != CHINESE_TEXT
    assert "1380" in result.text and "電話" in result.text


def test_faster_whisper_refuses_bad_audio_like_the_engine(whisper: Provider, tmp_path: Path) -> None:
    from qasr.errors import AudioError

    with pytest.raises(AudioError, match="audio file not found"):
        whisper.transcribe(tmp_path / "missing.wav")


def test_faster_whisper_language_names_and_codes(tiny_whisper: Path) -> None:
    assert make_provider(EngineSpec(provider="faster-whisper", whisper_model=str(tiny_whisper), language="zh")).language == "zh"  # type: ignore[attr-defined]
    with pytest.raises(UsageError, match="'Klingon' is not supported"):
        make_provider(EngineSpec(provider="faster-whisper", whisper_model=str(tiny_whisper), language="Klingon"))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d, tmp: str(tmp / "nope"), "model directory not found"),
        (lambda d, tmp: str(d / "model.bin"), "is a directory (model.bin, tokenizer.json, ...), not a file"),
        (lambda d, tmp: str(tmp), "is not a CTranslate2 Whisper model: no model.bin or tokenizer.json"),
        (None, "could not read the model"),
        (lambda d, tmp: None, "faster-whisper needs a model"),
    ],
    ids=["missing", "a file", "no model files", "corrupt", "none given"],
)
def test_faster_whisper_model_problems_are_model_file_errors(tiny_whisper: Path, tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    import shutil

    if make is None:  # a copy with its weights cut short
        broken = tmp_path / "broken"
        shutil.copytree(tiny_whisper, broken)
        (broken / "model.bin").write_bytes((tiny_whisper / "model.bin").read_bytes()[:100_000])
        spec = str(broken)
    else:
        spec = make(tiny_whisper, tmp_path)
    with pytest.raises(ModelFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_provider(EngineSpec(provider="faster-whisper", whisper_model=spec))


def test_faster_whisper_by_name_without_network_is_one_clear_error(tiny_whisper: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelFileError, match="'tiny' is not a directory and could not be fetched from the Hugging Face Hub") as info:
        make_provider(EngineSpec(provider="faster-whisper", whisper_model="tiny"))
    assert "\n" not in str(info.value)


def test_faster_whisper_not_installed_is_engine_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faster_whisper", None)  # import now raises ImportError
    with pytest.raises(EngineNotFound, match=r"pip install 'qasr\[whisper\]'"):
        make_provider(EngineSpec(provider="faster-whisper", whisper_model="/x"))


def test_faster_whisper_option_values_are_usage_errors(tiny_whisper: Path) -> None:
    with pytest.raises(UsageError, match="compute type"):
        make_provider(EngineSpec(provider="faster-whisper", whisper_model=str(tiny_whisper), compute_type="int9"))
    with pytest.raises(UsageError, match="beam size"):
        make_provider(EngineSpec(provider="faster-whisper", whisper_model=str(tiny_whisper), beam_size=0))


# -- the contract, on qwen3-chatllm (the test double) ------------------------------------------------


def test_qwen_provider_meets_the_contract_on_the_double(double_lib: Path, asr_model_file: Path, wav_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from qasr.engine import library

    for key in [k for k in list(os.environ) if k.startswith("QASR_DOUBLE_")]:
        monkeypatch.delenv(key)
    library.load_library(double_lib)
    qwen = make_provider(EngineSpec(model=str(asr_model_file)), CallOptions(itn=True))
    assert isinstance(qwen, Provider) and qwen.name == "qwen3-chatllm" and qwen.streams is True
    first, second = qwen.transcribe(wav_file), qwen.transcribe(wav_file)
    assert first.text == "hello world from the test double" and first.figures.ttft_seconds is not None
    assert qwen.load_seconds > 0 and first.figures.load_seconds == round(qwen.load_seconds, 4) and second.figures.load_seconds == 0.0
    assert qwen.describe()["is_test_double"] is True
    pieces = list(stream := qwen.stream(wav_file))
    assert "".join(pieces) == stream.result.asr_text  # type: ignore[union-attr]
    qwen.close()
    qwen.close()
    with pytest.raises(QasrError, match="closed"):
        qwen.transcribe(wav_file)


def test_qwen_provider_needs_a_model() -> None:
    with pytest.raises(ModelFileError, match="qwen3-chatllm needs a Qwen3-ASR model"):
        make_provider(EngineSpec(provider="qwen3-chatllm"))


# -- the chain -------------------------------------------------------------------------------------


class _Fake:
    def __init__(self, name: str, failure: QasrError | None) -> None:
        self.name, self.failure = name, failure

    def __call__(self, spec: EngineSpec, defaults: CallOptions) -> object:
        if self.failure is not None:
            raise self.failure
        return self


def _fakes(monkeypatch: pytest.MonkeyPatch, **failures: QasrError | None) -> None:
    """Fake providers; ``auto`` walks just these two (tests/test_crispasr.py covers the default order with crispasr)."""
    table = {name.replace("_", "-"): _Fake(name.replace("_", "-"), exc) for name, exc in failures.items()}
    monkeypatch.setattr(chain, "provider_class", lambda name: table[name])
    monkeypatch.setattr(chain, "DEFAULT_ORDER", ("qwen3-chatllm", "faster-whisper"))


@pytest.mark.parametrize(
    ("failure", "reason"),
    [(EngineNotFound("libchatllm not found"), "engine not found"), (ModelFileError("bad magic"), "model file missing or corrupt"),
     (EngineError("injected error at start"), "load failed")],  # fmt: skip
)
def test_auto_falls_back_with_one_line_saying_why(monkeypatch: pytest.MonkeyPatch, failure: QasrError, reason: str) -> None:
    _fakes(monkeypatch, qwen3_chatllm=failure, faster_whisper=None)
    said: list[str] = []
    provider = make_provider(EngineSpec(provider="auto"), on_fallback=said.append)
    assert provider.name == "faster-whisper"
    assert said == [f"qwen3-chatllm unavailable ({reason}: {failure}); falling back to faster-whisper"]


def test_auto_takes_the_first_that_starts_and_says_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    _fakes(monkeypatch, qwen3_chatllm=None, faster_whisper=EngineNotFound("never tried"))
    said: list[str] = []
    assert make_provider(EngineSpec(provider="auto"), on_fallback=said.append).name == "qwen3-chatllm" and said == []


def test_the_order_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    _fakes(monkeypatch, qwen3_chatllm=None, faster_whisper=None)
    assert make_provider(EngineSpec(provider="auto:faster-whisper,qwen3-chatllm")).name == "faster-whisper"
    monkeypatch.setenv("QASR_PROVIDER_ORDER", "faster-whisper,qwen3-chatllm")
    assert make_provider(EngineSpec(provider="auto")).name == "faster-whisper"
    monkeypatch.delenv("QASR_PROVIDER_ORDER")
    assert make_provider(EngineSpec(provider="auto")).name == "qwen3-chatllm"


def test_when_none_starts_every_reason_is_named_with_the_first_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    _fakes(monkeypatch, qwen3_chatllm=EngineNotFound("no lib"), faster_whisper=ModelFileError("no dir"))
    said: list[str] = []
    with pytest.raises(NoProviderAvailable) as info:
        make_provider(EngineSpec(provider="auto"), on_fallback=said.append)
    assert info.value.exit_code == EngineNotFound.exit_code == 3
    assert str(info.value) == "no provider could start: qwen3-chatllm: engine not found (no lib); faster-whisper: model file missing or corrupt (no dir)"
    assert len(said) == 1  # the last failure is in the error, not announced as a fallback


def test_a_usage_error_is_raised_not_fallen_back_from(monkeypatch: pytest.MonkeyPatch) -> None:
    _fakes(monkeypatch, qwen3_chatllm=UsageError("language 'Klingon' is not supported"), faster_whisper=None)
    with pytest.raises(UsageError, match="Klingon"):
        make_provider(EngineSpec(provider="auto"), on_fallback=pytest.fail)


def test_a_named_provider_raises_its_own_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _fakes(monkeypatch, qwen3_chatllm=EngineNotFound("no lib"), faster_whisper=None)
    with pytest.raises(EngineNotFound, match="no lib"):
        make_provider(EngineSpec(provider="qwen3-chatllm"), on_fallback=pytest.fail)


def test_specs_are_checked() -> None:
    assert parse_spec(None) == (["qwen3-chatllm"], False)
    assert parse_spec("auto:faster-whisper") == (["faster-whisper"], True)
    for bad in ("whisper", "auto:qwen", "auto:"):
        with pytest.raises(UsageError, match="qwen3-chatllm, crispasr, faster-whisper"):
            parse_spec(bad)
    assert providers_for("auto", ("qwen3-chatllm",)) == (["qwen3-chatllm"], True)
    with pytest.raises(UsageError, match="cannot serve this command, which needs qwen3-chatllm: because"):
        providers_for("faster-whisper", ("qwen3-chatllm",), "because")
    with pytest.raises(UsageError, match="cannot serve"):
        providers_for("auto:faster-whisper", ("qwen3-chatllm",))


# -- the CLI ----------------------------------------------------------------------------------------


def test_cli_transcribe_with_faster_whisper(tiny_whisper: Path, wav_file: Path) -> None:
    from whisper_tiny import TEXT

    r = run_qasr(["transcribe", str(wav_file), "--provider", "faster-whisper", "--whisper-model", str(tiny_whisper), "-f", "json"])
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["provider"] == "faster-whisper" and data["text"] == TEXT and data["peak_rss_bytes"] > 0


@pytest.mark.parametrize(
    ("extra", "env_knobs", "reason"),
    [([], {}, "model file missing or corrupt: qwen3-chatllm needs a Qwen3-ASR model"),
     (["-m", "MODEL", "--engine", "/nonexistent/libchatllm.so"], {}, "engine not found: libchatllm not found"),
     (["-m", "MODEL"], {"error_at": "start"}, "load failed: engine failed to load")],  # fmt: skip
    ids=["no model", "engine missing", "load error"],
)
def test_cli_auto_falls_back_saying_why_in_one_line(double_lib: Path, asr_model_file: Path, tiny_whisper: Path, wav_file: Path,
                                                    extra: list[str], env_knobs: dict[str, str], reason: str) -> None:  # fmt: skip
    from whisper_tiny import TEXT

    args = [str(asr_model_file) if a == "MODEL" else a for a in extra]
    r = run_qasr(["transcribe", str(wav_file), "--provider", "auto", "--whisper-model", str(tiny_whisper), "-f", "json", *args],
                 double_env(double_lib, **env_knobs))  # fmt: skip
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("qasr: warning:")]
    # the default order goes through crispasr, which has no GGUF model here: one line per provider skipped
    assert len(warnings) == 2 and f"qwen3-chatllm unavailable ({reason}" in warnings[0], r.stderr
    assert warnings[0].endswith("falling back to crispasr") and "crispasr unavailable (model file missing or corrupt" in warnings[1]
    assert warnings[1].endswith("falling back to faster-whisper")
    assert json.loads(r.stdout)["provider"] == "faster-whisper" and json.loads(r.stdout)["text"] == TEXT


def test_cli_auto_with_nothing_available_is_one_error_line(double_lib: Path, tmp_path: Path, wav_file: Path) -> None:
    r = run_qasr(["transcribe", str(wav_file), "--provider", "auto", "--whisper-model", str(tmp_path / "none")], double_env(double_lib))
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("qasr: error:")]
    assert len(errors) == 1 and "no provider could start: qwen3-chatllm:" in errors[0] and "faster-whisper: model file missing" in errors[0]
    assert "Traceback" not in r.stderr


def test_cli_auto_prefers_the_engine_when_it_starts(double_lib: Path, asr_model_file: Path, wav_file: Path) -> None:
    r = run_qasr(["transcribe", str(wav_file), "--provider", "auto", "-m", str(asr_model_file), "-f", "json"], double_env(double_lib))
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    assert json.loads(r.stdout)["provider"] == "qwen3-chatllm"


def test_cli_refusals_are_one_line(double_lib: Path, asr_model_file: Path, wav_file: Path) -> None:
    r = run_qasr(["stream", str(wav_file), "--provider", "faster-whisper"], double_env(double_lib))
    assert r.returncode == 2 and "needs qwen3-chatllm" in r.stderr and "forced" in r.stderr and len(r.stderr.splitlines()) == 1
    r = run_qasr(["transcribe", str(wav_file), "--provider", "faster-whisper", "-a", str(asr_model_file)], double_env(double_lib))
    assert r.returncode == 2 and "--aligner" in r.stderr and "Traceback" not in r.stderr
    r = run_qasr(["transcribe", str(wav_file), "--provider", "whisper"], double_env(double_lib))
    assert r.returncode == 2 and "unknown provider 'whisper'" in r.stderr


def test_cli_stream_accepts_auto_and_uses_the_engine(double_lib: Path, asr_model_file: Path) -> None:
    speech = Path(__file__).resolve().parents[1] / "samples" / "en-hello.wav"
    r = run_qasr(["stream", str(speech), "--provider", "auto", "-m", str(asr_model_file), "--no-realtime", "-f", "jsonl"],
                 double_env(double_lib, words="audio"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    finals = [e for e in map(json.loads, r.stdout.splitlines()) if e["type"] == "final"]
    assert finals and all(f["text"] for f in finals) and "warning" not in r.stderr


def test_the_deprecated_options_still_load_the_same_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    _fakes(monkeypatch, qwen3_chatllm=None, faster_whisper=None)
    with pytest.warns(DeprecationWarning, match="ProviderOptions is now qasr.EngineSpec"):
        old = ProviderOptions(model="m.bin", itn=True, opencc="s2twp", threads=2)
    spec, calls = old.split("faster-whisper")
    assert spec == EngineSpec(provider="faster-whisper", model="m.bin", threads=2)
    assert calls == CallOptions(itn=True, opencc="s2twp")
    assert make_provider("faster-whisper", old).name == "faster-whisper"


def test_faster_whisper_takes_audio_longer_than_one_engine_call(whisper: Provider) -> None:
    """Issue 21: the 8-minute limit is the chatllm engine's, checked at its calls only; a 9-minute
    array reaches faster-whisper, which windows long audio itself."""
    import numpy as np

    from qasr.audio import MAX_SECONDS_PER_CALL, from_array

    nine = from_array(np.zeros(9 * 60 * 16_000, np.float32), 16_000, source="nine minutes")
    assert nine.seconds > MAX_SECONDS_PER_CALL
    result = whisper.transcribe(nine)
    assert result.figures.audio_seconds == 540.0 and result.source == "nine minutes"
