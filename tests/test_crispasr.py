"""``--provider crispasr``: Qwen3-ASR on CrispASR, in a child process of its own.

Two engines behind the tests: the real ``crispasr`` wheel (``qasr[crispasr]``, in ``dev``) loading
tiny GGUF files the tests write (`qasr.engine.synth.gguf`), and, where random weights cannot show
what is checked (ITN, OpenCC, echo, injected failures), the scripted stand-in in
tests/crispasr_fake put first on the engine process's ``PYTHONPATH``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import ROOT, SHARED_DATA, double_env, engine_child, real_engine, requires_real_engine, run_qasr, sine

from qasr.engine.synth import TINY_ALIGNER, TINY_ASR, write_model
from qasr.engine.synth.gguf import write_gguf
from qasr.errors import AudioError, EngineError, EngineNotFound, ModelFileError, QasrError, UsageError
from qasr.pipeline.align import unit_spans
from qasr.processes import status_bytes
from qasr.providers import make_provider
from qasr.providers import chain
from qasr.providers.crispasr import ALIGNER_LINK, CrispAsrProvider, language_code
from qasr.spec import CallOptions, EngineSpec

FAKE = Path(__file__).resolve().parent / "crispasr_fake"
requires_crispasr = pytest.mark.skipif(importlib.util.find_spec("crispasr") is None, reason="pip install 'qasr[crispasr]'")
#: TINY_ALIGNER's body with the full vocabulary: CrispASR's aligner embeds token 151705 whatever the file says.
TINY_ALIGNER_FULL = dataclasses.replace(TINY_ALIGNER, text=dataclasses.replace(TINY_ALIGNER.text, vocab_size=152_064),
                                        base_vocab=151_643)


@pytest.fixture(scope="module")
def aligner_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_gguf(TINY_ALIGNER_FULL, tmp_path_factory.mktemp("crisp") / "aligner.synthetic.gguf", dtype="q8_0", seed=3).path


@pytest.fixture()
def tone(tmp_path: Path) -> Path:
    path = tmp_path / "tone.wav"
    soundfile.write(str(path), sine(2.0), 16_000)
    return path


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The scripted crispasr in the engine process; returns a reader of what the engine was given."""
    log = tmp_path / "engine-calls.jsonl"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FAKE), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("QASR_FAKE_CRISP_LOG", str(log))

    def calls(kind: str) -> list[dict]:  # type: ignore[type-arg]
        lines = log.read_text().splitlines() if log.exists() else []
        return [c for c in map(json.loads, lines) if c["call"] == kind]

    return calls


_SPEC_FIELDS = ("aligner", "max_tokens", "language")  # what is loaded; the rest are the calls' defaults


def crisp(model: Path, **options: object) -> CrispAsrProvider:
    spec = EngineSpec(provider="crispasr", model=str(model), threads=1, **{k: v for k, v in options.items() if k in _SPEC_FIELDS})  # type: ignore[arg-type]
    calls = CallOptions(**{k: v for k, v in options.items() if k not in _SPEC_FIELDS})  # type: ignore[arg-type]
    return make_provider(spec, calls)  # type: ignore[return-value]


# -- with the real CrispASR ---------------------------------------------------------------------------


@requires_crispasr
def test_cli_transcribe_with_a_tiny_gguf(gguf: Path, tone: Path) -> None:
    r = run_qasr(["transcribe", str(tone), "--provider", "crispasr", "-m", str(gguf), "--max-tokens", "7", "-f", "json"])
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["provider"] == "crispasr" and data["text"] and data["tokens"] == 7 and data["engine_calls"] == 1
    assert data["ttft_seconds"] is None and data["tokens_per_second"] is None and 0 < data["rtf"] and data["load_seconds"] > 0
    assert data["peak_rss_bytes"] > 0 and data["audio_seconds"] == 2.0
    assert "SYNTHETIC" in r.stderr and "each call stops after 7 tokens" in r.stderr and "Traceback" not in r.stderr


@requires_crispasr
def test_the_provider_interface(gguf: Path, tone: Path) -> None:
    provider = crisp(gguf, max_tokens=6)
    try:
        assert provider.name == "crispasr" and provider.streams is False and provider.load_seconds > 0
        first, second = provider.transcribe(tone), provider.transcribe(tone)
        assert first.text == second.text and first.text  # greedy decoding: the same audio, the same text
        assert first.figures.load_seconds == round(provider.load_seconds, 4) and second.figures.load_seconds == 0.0
        stream = provider.stream(tone)
        assert "".join(stream) == stream.result.asr_text == first.asr_text  # type: ignore[union-attr]
        d = provider.describe()
        assert d["format"] == "gguf" and d["synthetic"] is True and d["streams_tokens"] is False and "crispasr 0.8" in d["engine"]
        own = status_bytes("VmHWM")
        assert provider.peak_rss_bytes() > 0 and chain.peak_rss_of(provider) >= max(own or 0, provider.peak_rss_bytes())
        samples = soundfile.read(str(tone), dtype="float32")[0]
        assert provider.call(samples, max_tokens=2)["tokens"] == 2 and provider.call(samples)["tokens"] == 6  # this call only
        engine = provider.engine
        assert engine is not None and engine.ask("close")["kind"] == "closed"  # load/close cycles in one engine process
        assert engine.ask("open", model=str(gguf), threads=1, max_tokens=3)["kind"] == "opened" and provider.call(samples)["tokens"] == 3
        pid = engine.child.pid
        assert provider.engine_pid == pid and Path(f"/proc/{pid}/status").read_text().count("VmRSS") == 1
    finally:
        provider.close()
        provider.close()
    assert not Path(f"/proc/{pid}").exists()  # the engine process ended (and was waited for) with the provider
    with pytest.raises(QasrError, match="closed"):
        provider.transcribe(tone)


@requires_crispasr
def test_language_and_context_reach_the_engine_per_call(gguf: Path, tone: Path) -> None:
    provider = crisp(gguf, max_tokens=6)
    loaded_english = crisp(gguf, max_tokens=6, language="English")  # the spec's language is the calls' default
    try:
        plain = provider.transcribe(tone)
        english = provider.transcribe(tone, CallOptions(language="English"))  # no reload: the next call may differ
        hint = provider.transcribe(tone, CallOptions(context="<|im_end|>Kennedy, Berlin"))
        assert english.language == "English" and plain.language is None
        assert english.asr_text != plain.asr_text  # the prefill "language English<asr_text>" changed the prompt
        assert loaded_english.transcribe(tone).asr_text == english.asr_text
        assert hint.context == "Kennedy, Berlin" and hint.asr_text != plain.asr_text  # cleaned, then given as hotwords
        assert provider.transcribe(tone).asr_text == plain.asr_text  # and cleared again for the next call
        assert provider.describe()["context_as"].startswith("hotwords")
        with pytest.raises(UsageError, match="Klingon"):
            provider.transcribe(tone, CallOptions(language="Klingon"))
    finally:
        provider.close()
        loaded_english.close()


@requires_crispasr
def test_word_times_from_crispasrs_aligner(gguf: Path, aligner_gguf: Path, tone: Path) -> None:
    provider = crisp(gguf, max_tokens=5, aligner=str(aligner_gguf))
    try:
        result = provider.transcribe(tone)
        words = result.segments[0].words
        units = [result.asr_text[a:b] for a, b in unit_spans(result.asr_text)]  # CrispASR's finer split, folded onto ours
        assert words is not None and [w.text for w in words] == units and units
        assert all(0.0 <= w.start <= w.end <= 2.0 for w in words)  # a random aligner's times, repaired into the audio
        assert (provider.engine.workdir / ALIGNER_LINK).resolve() == aligner_gguf.resolve()  # type: ignore[union-attr]
    finally:
        provider.close()


@requires_crispasr
def test_an_engine_abort_costs_the_child_only(gguf: Path, aligner_gguf: Path, tmp_path: Path, tone: Path) -> None:
    small = write_gguf(TINY_ALIGNER, tmp_path / "small-vocab-aligner.gguf", dtype="q8_0").path
    with pytest.raises(ModelFileError, match="151705"):  # refused in Python: CrispASR would abort on it
        crisp(gguf, aligner=str(small))
    provider = crisp(gguf, max_tokens=5, aligner=str(aligner_gguf))
    try:
        link = provider.engine.workdir / ALIGNER_LINK  # type: ignore[union-attr]
        link.unlink()
        link.symlink_to(small)  # past the check: what a native abort looks like from here
        with pytest.raises(EngineError, match=r"engine process stopped \(killed by SIGABRT.*GGML_ASSERT"):
            provider.align(np.zeros(16_000, np.float32), "hello")
        with pytest.raises(EngineError, match="stopped"):
            provider.transcribe(tone)
        assert provider.peak_rss_bytes() > 0  # what was seen of the engine process before it died
    finally:
        provider.close()


@requires_crispasr
def test_bad_models_and_audio_are_one_line_errors(gguf: Path, aligner_gguf: Path, tmp_path: Path, tone: Path) -> None:
    ggmm = write_model(TINY_ASR, tmp_path / "chatllm.bin").path
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(gguf.read_bytes()[:5000])
    cases = [(["-m", str(ggmm)], "chatllm.cpp model file; CrispASR needs a GGUF"), (["-m", str(cut)], "truncated"),
             (["-m", str(aligner_gguf)], "but a Qwen3-ASR model is needed"), ([], "crispasr needs a Qwen3-ASR GGUF model"),
             (["-m", str(gguf), "-l", "Klingon"], "not one of Qwen3-ASR's")]  # fmt: skip
    for args, words in cases:
        r = run_qasr(["transcribe", str(tone), "--provider", "crispasr", *args], {k: v for k, v in os.environ.items() if k != "QASR_MODEL"})
        assert r.returncode == 2 and words in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, (args, r.stderr)
    silent = tmp_path / "short.wav"
    soundfile.write(str(silent), np.zeros(800, np.float32), 16_000)
    r = run_qasr(["transcribe", str(silent), "--provider", "crispasr", "-m", str(gguf)])
    assert r.returncode == 2 and "too short" in r.stderr and "Traceback" not in r.stderr


@requires_crispasr
def test_the_engine_never_sees_the_users_path(gguf: Path, tmp_path: Path) -> None:
    evil = tmp_path / "$(touch PWNED)`touch PWNED2`.wav"
    soundfile.write(str(evil), sine(1.0), 16_000)
    r = run_qasr(["transcribe", str(evil), "--provider", "crispasr", "-m", str(gguf), "--max-tokens", "3"], dict(os.environ, PWD=str(tmp_path)))
    assert r.returncode == 0, r.stderr
    assert not any(p.name.startswith("PWNED") for p in tmp_path.iterdir()) and not Path("PWNED").exists()


@requires_crispasr
@pytest.mark.skipif(not (SHARED_DATA / "jfk.wav").exists(), reason="needs ../shared/data")
def test_long_audio_is_cut_at_pauses_like_qwen3_chatllm(gguf: Path) -> None:
    provider = crisp(gguf, max_tokens=3, max_chunk=4.0)
    try:
        result = provider.transcribe(SHARED_DATA / "jfk.wav")
    finally:
        provider.close()
    assert result.figures.engine_calls == len(result.segments) >= 3 and all(s.end - s.start <= 4.01 for s in result.segments)
    assert result.figures.tokens == 3 * len(result.segments)


@requires_crispasr
def test_benchmark_takes_crispasr(gguf: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("a", "b"):
        soundfile.write(str(data / f"{name}.wav"), sine(1.5), 16_000)
        (data / f"{name}.txt").write_text("hello world\n")
    r = run_qasr(["benchmark", str(data), "--candidate", "crispasr", "--baseline", "none", "-m", str(gguf), "-o", str(tmp_path / "out"), "--json"],
                 timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    run = json.loads(r.stdout)["providers"][0]
    assert run["name"] == "crispasr" and len(run["outcomes"]) == 2 and run["peak_rss_bytes"] > 0 and run["describe"]["format"] == "gguf"


@requires_crispasr
def test_the_server_takes_crispasr(gguf: Path, tone: Path) -> None:
    pytest.importorskip("openai")
    from test_serve import Server

    server = Server(["--provider", "crispasr", "-m", str(gguf), "--max-tokens", "4", "--workers", "1"], dict(os.environ))
    try:
        with tone.open("rb") as f:
            result = server.client().audio.transcriptions.create(model="m", file=f, response_format="verbose_json")
    finally:
        server.stop()
    direct = crisp(gguf, max_tokens=4)
    try:
        assert result.text == direct.transcribe(tone).text and result.duration == pytest.approx(2.0)  # the same engine's words
    finally:
        direct.close()


@requires_crispasr
@requires_real_engine
@pytest.mark.real_engine
@pytest.mark.parametrize("first", ["chatllm", "crispasr"])
def test_crispasr_and_libchatllm_cannot_share_a_process(gguf: Path, first: str) -> None:
    """Why the provider runs CrispASR in a process of its own: the two ggml copies break each other."""
    lib, model = real_engine()  # type: ignore[misc]
    r = engine_child(f"""
        import os, numpy as np
        def chat():
            from qasr.engine.model import Model
            print("chatllm:", "".join(Model({str(model)!r}, threads=1).transcribe_raw(np.full(16000, 0.01, np.float32), max_tokens=4)))
        def crisp():
            import crispasr
            s = crispasr.Session({str(gguf)!r}, n_threads=1)
            s.set_max_new_tokens(2)
            print("crispasr:", s.transcribe(np.full(16000, 0.01, np.float32))[0].text)
        try:
            for step in ((chat, crisp) if {first!r} == "chatllm" else (crisp, chat)):
                step()
        except BaseException as exc:
            print("FAILED:", exc)
        os._exit(0)
    """)
    assert r.returncode == 0 and f"{first}:" in r.stdout, r.stdout + r.stderr
    assert "FAILED:" in r.stdout and "undefined symbol: ggml_" in r.stdout  # the second engine cannot load


# -- with the scripted stand-in ----------------------------------------------------------------------


def test_post_processing_is_qwen3_chatllms(fake, gguf: Path, tone: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("QASR_FAKE_CRISP_TEXT", "我的电话号码是一三八零零一三八零零零")
    provider = crisp(gguf, language="zh", itn=True, opencc="s2twp", max_tokens=9, context="Kennedy")
    try:
        result = provider.transcribe(tone)
    finally:
        provider.close()
    assert result.asr_text == "我的电话号码是一三八零零一三八零零零" and result.text == "我的電話號碼是13800138000"
    assert result.language == "Chinese" and result.figures.tokens == 1
    (call,) = fake("transcribe")
    samples = soundfile.read(str(tone), dtype="float32")[0]
    assert call["language"] == "zh" and call["hotwords"] == "Kennedy" and call["max_new_tokens"] == 9
    assert call["samples"] == len(samples) and call["checksum"] == pytest.approx(float(samples[:1000].sum()), abs=1e-3)
    assert fake("open")[0]["threads"] == 1 and fake("close")  # the session is closed when the provider is


def test_echo_and_loops_are_handled_as_for_qwen3_chatllm(fake, gguf: Path, tone: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("QASR_FAKE_CRISP_TEXT", "Kennedy Berlin Brandenburg")
    provider = crisp(gguf, context="Kennedy Berlin Brandenburg")
    try:
        echo = provider.transcribe(tone)
    finally:
        provider.close()
    assert echo.text == "" and echo.context_echo and echo.no_speech and "only repeated the context" in echo.warnings[0]
    monkeypatch.setenv("QASR_FAKE_CRISP_TEXT", "ok " + "的" * 40)
    provider = crisp(gguf)
    try:
        looped = provider.transcribe(tone)
    finally:
        provider.close()
    assert looped.loops_repaired == 1 and len(looped.text) < 20


def test_word_times_follow_itn_onto_the_final_text(fake, gguf: Path, aligner_gguf: Path, tone: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("QASR_FAKE_CRISP_TEXT", "电话一三八")
    provider = crisp(gguf, aligner=str(aligner_gguf), itn=True, language="Chinese")
    try:
        result = provider.transcribe(tone)
    finally:
        provider.close()
    (call,) = fake("align")
    assert call["aligner"] == ALIGNER_LINK and call["words"] == list("电话一三八")  # one unit per CJK character
    words = result.segments[0].words
    assert [w.text for w in words] == ["电", "话", "138"] and words[2].start == pytest.approx(0.8) and words[2].end == pytest.approx(2.0)


@pytest.mark.parametrize(("fail", "error", "words"), [
    ("open", ModelFileError, "crispasr: RuntimeError: injected open failure"),
    ("transcribe", EngineError, "crispasr: RuntimeError: injected transcribe failure"),
    ("abort", EngineError, "killed by SIGABRT"),
])  # fmt: skip
def test_engine_failures_are_our_errors(fake, gguf: Path, tone: Path, monkeypatch: pytest.MonkeyPatch, fail: str,  # type: ignore[no-untyped-def]
                                        error: type, words: str) -> None:  # fmt: skip
    monkeypatch.setenv("QASR_FAKE_CRISP_FAIL", fail)
    with pytest.raises(error, match=words.replace("(", r"\(")):
        provider = crisp(gguf)
        try:
            provider.transcribe(tone)
        finally:
            provider.close()
    assert error.exit_code == (2 if error is ModelFileError else 4)


def test_a_missing_package_is_engine_not_found(gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "crispasr" else real(name, *a))
    with pytest.raises(EngineNotFound, match=r"pip install 'qasr\[crispasr\]'") as info:
        crisp(gguf)
    assert info.value.exit_code == 3


def test_language_names_and_codes() -> None:
    assert language_code("English") == "en" and language_code("cantonese") == "yue" and language_code("fil") == "tl"
    assert language_code(None) is None and language_code("auto") is None
    with pytest.raises(UsageError, match="Klingon"):
        language_code("Klingon")


def test_auto_tries_crispasr_between_chatllm_and_whisper(monkeypatch: pytest.MonkeyPatch) -> None:
    from test_providers import _Fake as Fake

    assert chain.DEFAULT_ORDER == ("qwen3-chatllm", "crispasr", "faster-whisper")
    table = {"qwen3-chatllm": Fake("qwen3-chatllm", EngineNotFound("no libchatllm")), "crispasr": Fake("crispasr", None),
             "faster-whisper": Fake("faster-whisper", None)}  # fmt: skip
    monkeypatch.setattr(chain, "provider_class", lambda name: table[name])
    said: list[str] = []
    assert make_provider(EngineSpec(provider="auto"), on_fallback=said.append).name == "crispasr"
    assert said == ["qwen3-chatllm unavailable (engine not found: no libchatllm); falling back to crispasr"]
    table["crispasr"] = Fake("crispasr", ModelFileError("x.bin is a chatllm.cpp model file; CrispASR needs a GGUF file"))
    said.clear()
    assert make_provider(EngineSpec(provider="auto"), on_fallback=said.append).name == "faster-whisper"
    assert said[1] == "crispasr unavailable (model file missing or corrupt: x.bin is a chatllm.cpp model file; CrispASR needs a GGUF file); falling back to faster-whisper"


def test_no_speech_in_long_audio_is_an_audio_error(fake, gguf: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    quiet = tmp_path / "quiet.wav"
    soundfile.write(str(quiet), np.zeros(16_000 * 6, np.float32), 16_000)
    provider = crisp(gguf, max_chunk=2.0)
    try:
        with pytest.raises(AudioError, match="no speech found"):
            provider.transcribe(quiet)
    finally:
        provider.close()
    assert fake("transcribe") == []


@requires_crispasr
def test_bench_engines_rows(double_lib: Path, asr_model_file: Path, gguf: Path, tmp_path: Path) -> None:
    """benchmarks/bench_engines.py end to end on small models: the test double as chatllm.cpp, CrispASR on
    the tiny GGUF, and a stand-in for antirez's program that prints its timing lines."""
    program = tmp_path / "qwen_asr"
    program.write_text("#!/bin/sh\necho 'Model loaded.' >&2\necho '  Mel: 100 frames (10 ms)' >&2\n"
                       "echo '  Encoder: 13 tokens (200 ms)' >&2\necho '  Prefill: 20 tokens (300 ms)' >&2\n"
                       "echo \"  Decode: $QWEN_ASR_MAX_TOKENS tokens (400 ms, 100.0 ms/token)\" >&2\n")  # fmt: skip
    program.chmod(0o755)
    out = tmp_path / "rows.jsonl"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_engines.py"), "--chatllm-model", str(asr_model_file),
                        "--crispasr-model", str(gguf), "--audio", str(_wav(tmp_path)),
                        "--durations", "2", "--tokens", "4", "--threads", "1", "--hf-dir", str(tmp_path), "--qwen-asr", str(program),
                        "--jsonl", str(out)], capture_output=True, text=True, env=double_env(double_lib), timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = {row["engine"]: row for row in map(json.loads, out.read_text().splitlines())}
    assert rows["chatllm-qasr"]["rtf_ratio"] == 1.0 and rows["chatllm-qasr"]["ttft_how"].startswith("measured")
    crisp = rows["crispasr-qasr"]
    assert crisp["tokens"] == 4 and crisp["ttft_how"].startswith("derived") and crisp["peak_rss"] > 0 and crisp["rss_after_load"] > 0
    qwen = rows["qwen-asr"]
    assert qwen["tokens"] == 4 and qwen["capped"] and qwen["ttft_seconds"] == pytest.approx(0.61) and qwen["decode_tokens_per_second"] == 10.0
    assert "error" in rows["crispasr-cli"] and "error" in rows["llama.cpp-mtmd"]
    assert all(row["load_average"] >= 0 for row in rows.values() if "rtf" in row)


def _wav(tmp_path: Path) -> Path:
    path = tmp_path / "speech.wav"
    soundfile.write(str(path), sine(1.0), 16_000)
    return path
