"""Our side of the FFI, driven through the test double of the libchatllm ABI (never the engine)."""

from __future__ import annotations

import gc
import threading
import weakref
from pathlib import Path

import numpy as np
import pytest
from conftest import sine

from qasr.engine import library
from qasr.engine.model import Model, _parked_callbacks
from qasr.engine.modelfile import ModelKind
from qasr.errors import AudioError, EngineError, EngineNotFound, ModelFileError, UsageError

DEFAULT_TEXT = "hello world from the test double"


@pytest.fixture()
def engine(double_lib: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The double as this process's engine, with no injected behaviour."""
    for key in list(__import__("os").environ):
        if key.startswith("QASR_DOUBLE_"):
            monkeypatch.delenv(key)
    library.load_library(double_lib)
    return double_lib


def test_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QASR_CHATLLM_LIB", str(tmp_path / "from-env"))
    assert library.candidate_paths(tmp_path / "x.so") == [tmp_path / "x.so"]
    assert library.candidate_paths() == [tmp_path / "from-env" / "libchatllm.so"]
    monkeypatch.delenv("QASR_CHATLLM_LIB")
    monkeypatch.chdir(tmp_path)
    tried = library.candidate_paths()
    assert tried[0] == tmp_path / "chatllm.cpp" / "bindings" / "libchatllm.so"
    assert tmp_path / "chatllm.cpp" / "build" / "lib" / "libchatllm.so" in tried


def test_engine_not_found_lists_every_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QASR_CHATLLM_LIB", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(library, "_engine", None)
    with pytest.raises(EngineNotFound) as err:
        library.load_library()
    message = str(err.value)
    for path in library.candidate_paths():
        assert str(path) in message
    assert "QASR_CHATLLM_LIB" in message and "--engine" in message


def test_a_library_that_is_not_libchatllm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    src = tmp_path / "other.c"
    src.write_text("int something_else(void) { return 1; }\n")
    so = tmp_path / "libchatllm.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(so), str(src)], check=True)
    monkeypatch.setattr(library, "_engine", None)
    with pytest.raises(EngineNotFound, match="does not export chatllm_append_init_param"):
        library.load_library(so)


def test_init_happens_once_per_process(engine: Path) -> None:
    first = library.load_library(engine)
    assert library.load_library() is first
    assert first.is_test_double
    assert first.lib.qasr_double_init_count() == 1


def test_model_info_and_stream(engine: Path, asr_model_file: Path) -> None:
    model = Model(asr_model_file)
    assert model.info is not None
    assert model.info.purpose == "ASR" and model.info.context_length == 65536
    assert model.info.param_count and model.info.param_count > 0
    chunks = list(model.transcribe_raw(sine(1.0)))
    assert chunks[:3] == ["language", " English", "<asr_text>"]
    assert "".join(chunks[3:]) == DEFAULT_TEXT


def test_chunks_arrive_before_the_native_call_ends(engine: Path, asr_model_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QASR_DOUBLE_TOKEN_DELAY_MS", "40")
    model = Model(asr_model_file)
    stream = model.transcribe_raw(sine(1.0))
    first = next(stream)
    turn = model._sink.turn
    assert first == "language"
    assert turn is not None and turn.ends == 0  # f_end not called yet: the turn is still running
    rest = list(stream)
    assert turn.ends == 2  # upstream calls f_end twice per turn; we must not stop at the first
    assert "".join(rest).endswith("test double")


def test_callbacks_on_a_native_thread(engine: Path, asr_model_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QASR_DOUBLE_THREAD", "1")
    model = Model(asr_model_file)
    assert "".join(model.transcribe_raw(sine(1.0))).endswith(DEFAULT_TEXT)


def test_forced_language_and_unknown_language(engine: Path, asr_model_file: Path) -> None:
    model = Model(asr_model_file, language="english")
    assert model.language == "English"
    assert list(model.transcribe_raw(sine(1.0)))[0] == "<asr_text>"
    with pytest.raises(UsageError, match="'Klingon' is not supported.*Chinese, English"):
        Model(asr_model_file, language="Klingon")


def test_restart_gives_the_same_text(engine: Path, asr_model_file: Path) -> None:
    model = Model(asr_model_file)
    a = "".join(model.transcribe_raw(sine(1.0), fresh=False))
    model.restart()
    assert model.engine.lib.chatllm_get_cursor(model._handle()) == 0
    b = "".join(model.transcribe_raw(sine(1.0), fresh=False))
    assert a == b


def test_each_transcription_starts_fresh(engine: Path, asr_model_file: Path) -> None:
    model = Model(asr_model_file)
    list(model.transcribe_raw(sine(1.0)))
    n = model.engine.lib.chatllm_get_cursor(model._handle())
    list(model.transcribe_raw(sine(1.0)))
    assert model.engine.lib.chatllm_get_cursor(model._handle()) == n  # not 2n: history was discarded


def test_engine_errors_carry_the_engines_words(engine: Path, asr_model_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QASR_DOUBLE_ERROR_AT", "start")
    with pytest.raises(EngineError, match="injected error at start") as err:
        Model(asr_model_file)
    assert err.value.engine_message == "injected error at start"
    monkeypatch.setenv("QASR_DOUBLE_ERROR_AT", "inference")
    model = Model(asr_model_file)
    with pytest.raises(EngineError, match="injected error at inference"):
        list(model.transcribe_raw(sine(1.0)))
    monkeypatch.delenv("QASR_DOUBLE_ERROR_AT")
    assert "".join(model.transcribe_raw(sine(1.0))).endswith(DEFAULT_TEXT)  # the model is usable again


def test_stopping_early_aborts_and_frees_the_model(engine: Path, asr_model_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QASR_DOUBLE_TOKEN_DELAY_MS", "20")
    model = Model(asr_model_file)
    stream = model.transcribe_raw(sine(1.0))
    next(stream)
    stream.close()  # GeneratorExit -> chatllm_abort_generation, then join
    assert not model._lock.locked()
    monkeypatch.delenv("QASR_DOUBLE_TOKEN_DELAY_MS")
    assert "".join(model.transcribe_raw(sine(1.0))).endswith(DEFAULT_TEXT)


def test_one_thread_at_a_time(engine: Path, asr_model_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QASR_DOUBLE_TOKEN_DELAY_MS", "5")
    model = Model(asr_model_file)
    results: list[str] = []

    def work() -> None:
        results.append("".join(model.transcribe_raw(sine(1.0))))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(r.endswith(DEFAULT_TEXT) for r in results)
    stream = model.transcribe_raw(sine(1.0))
    next(stream)
    with pytest.raises(EngineError, match="already running a turn in this thread"):
        next(model.transcribe_raw(sine(1.0)))
    stream.close()


def test_close_destroys_and_drops_callbacks(engine: Path, asr_model_file: Path) -> None:
    model = Model(asr_model_file)
    ref = weakref.ref(model)
    model.close()
    assert model.closed and model._callbacks == ()
    with pytest.raises(EngineError, match="closed"):
        list(model.transcribe_raw(sine(1.0)))
    gc.collect()  # park models that earlier tests dropped, so the count below is ours alone
    parked = len(_parked_callbacks)
    del model
    gc.collect()
    assert ref() is None  # nothing global holds a closed model
    assert len(_parked_callbacks) == parked


def test_a_dropped_model_parks_its_callbacks(engine: Path, asr_model_file: Path) -> None:
    """The native object outlives a forgotten Model; so must the callbacks it can still call."""
    gc.collect()
    before = len(_parked_callbacks)
    model = Model(asr_model_file)
    callbacks = model._callbacks
    del model
    gc.collect()
    assert len(_parked_callbacks) == before + 1
    assert _parked_callbacks[-1] is callbacks


def test_the_engine_never_sees_the_users_path(engine: Path, asr_model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import soundfile

    evil = tmp_path / "$(touch PWNED).wav"
    soundfile.write(str(evil), sine(1.0), 16_000)
    model = Model(asr_model_file)
    seen: list[bytes] = []
    real = model.engine.lib.chatllm_user_input

    def spy(obj, text):  # type: ignore[no-untyped-def]
        seen.append(text)
        return real(obj, text)

    monkeypatch.setattr(model.engine.lib, "chatllm_user_input", spy)
    assert "".join(model.transcribe_raw(evil)).endswith(DEFAULT_TEXT)
    assert len(seen) == 1
    assert b"PWNED" not in seen[0] and seen[0].startswith(b"{{audio:/") and seen[0].endswith(b"/audio.wav}}")


def test_model_file_checked_before_the_engine(engine: Path, tmp_path: Path, aligner_model_file: Path) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"ggmm" + b"\0" * 5)
    with pytest.raises(ModelFileError, match="truncated"):
        Model(bad)
    with pytest.raises(ModelFileError, match="ForcedAligner"):
        Model(aligner_model_file)
    aligner = Model(aligner_model_file, kind=ModelKind.ALIGNER)
    with pytest.raises(UsageError, match="not an ASR model"):
        list(aligner.transcribe_raw(sine(1.0)))


def test_bad_arguments(engine: Path, asr_model_file: Path) -> None:
    with pytest.raises(UsageError, match="threads"):
        Model(asr_model_file, threads=0)
    with pytest.raises(UsageError, match="max_length"):
        Model(asr_model_file, max_length=10)
    model = Model(asr_model_file)
    with pytest.raises(AudioError, match="NaN"):
        list(model.transcribe_raw(np.full(16_000, np.nan, np.float32)))


def test_two_threads_closing_destroy_once(engine: Path, asr_model_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    model = Model(asr_model_file)
    calls: list[object] = []
    real = model.engine.lib.chatllm_destroy

    def slow_destroy(obj):  # type: ignore[no-untyped-def]
        calls.append(obj)
        time.sleep(0.05)
        return real(obj)

    monkeypatch.setattr(model.engine.lib, "chatllm_destroy", slow_destroy)
    threads = [threading.Thread(target=model.close) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and calls[0] is not None


def test_threads_are_passed_as_threads_not_temperature(engine: Path, asr_model_file: Path) -> None:
    # Upstream main.cpp: "-t, --temp T" is the sampling temperature; threads are "-n, --threads N".
    with Model(asr_model_file, threads=2, max_length=512) as m:
        words = m._params(2, 512, (), {})
    assert words[words.index("--threads") + 1] == "2"
    assert "-t" not in words and words[words.index("--max_length") + 1] == "512"


def test_two_models_share_a_process_although_the_engine_mixes_up_callbacks(
    engine: Path, asr_model_file: Path, aligner_model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upstream 4a4310e prints every model's chunks through the callback of the model started last
    (the double's LAST_STARTED_PRINTS mirrors it); each model still gets its own text, alternately."""
    import json

    monkeypatch.setenv("QASR_DOUBLE_LAST_STARTED_PRINTS", "1")
    forced = Model(asr_model_file, language="English")
    auto = Model(asr_model_file)
    aligner = Model(aligner_model_file, kind=ModelKind.ALIGNER, settings={"format": "json"})
    for _ in range(2):
        assert "".join(forced.transcribe_raw(sine(1.0))) == "<asr_text>" + DEFAULT_TEXT
        assert "".join(auto.transcribe_raw(sine(1.0))) == "language English<asr_text>" + DEFAULT_TEXT
        assert [w["text"] for w in json.loads("".join(aligner.align_raw(sine(1.0), "one two")))] == ["one", "two"]


def test_turns_of_two_models_run_one_at_a_time(engine: Path, asr_model_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two threads on two models: serialised per process, so neither gets the other's chunks."""
    monkeypatch.setenv("QASR_DOUBLE_LAST_STARTED_PRINTS", "1")
    monkeypatch.setenv("QASR_DOUBLE_TOKEN_DELAY_MS", "3")
    models = {"forced": Model(asr_model_file, language="English"), "auto": Model(asr_model_file)}
    results: dict[str, list[str]] = {name: [] for name in models}

    def work(name: str) -> None:
        for _ in range(3):
            results[name].append("".join(models[name].transcribe_raw(sine(0.5))))

    threads = [threading.Thread(target=work, args=(name,)) for name in models]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results["forced"] == ["<asr_text>" + DEFAULT_TEXT] * 3
    assert results["auto"] == ["language English<asr_text>" + DEFAULT_TEXT] * 3
    running = models["forced"].transcribe_raw(sine(0.5))
    next(running)
    with pytest.raises(EngineError, match="another model's turn is still running in this thread"):
        next(models["auto"].transcribe_raw(sine(0.5)))
    running.close()
    assert "".join(models["auto"].transcribe_raw(sine(0.5))).endswith(DEFAULT_TEXT)  # the board was released


def test_a_second_live_model_of_one_kind_is_refused_before_it_is_created(
    engine: Path, asr_model_file: Path, aligner_model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upstream 4a4310e's Qwen3-ASR objects share one prompt encoder (the double's do not): on such an
    engine a second ASR model would leave the first deaf, so it is refused; an aligner is not."""
    from qasr.engine import switchboard

    monkeypatch.setattr(switchboard, "shares_prompt_encoder", lambda _engine: True)  # as on upstream
    monkeypatch.setattr(switchboard, "_residents", {})  # models earlier tests left loaded do not count
    first = Model(asr_model_file)
    created: list[int] = []
    real_create = first.engine.lib.chatllm_create
    monkeypatch.setattr(first.engine.lib, "chatllm_create", lambda: created.append(1) or real_create())
    with pytest.raises(EngineError, match=r"cannot hold two Qwen3-ASR models in one process.*qwen\.cpp:2995.*asr\.bin"):
        Model(asr_model_file)
    assert created == []  # refused before the engine could re-point anything
    aligner = Model(aligner_model_file, kind=ModelKind.ALIGNER)
    assert created == [1]
    with pytest.raises(EngineError, match="two Qwen3-ForcedAligner models"):
        Model(aligner_model_file, kind=ModelKind.ALIGNER)
    assert "".join(first.transcribe_raw(sine(0.5))).endswith(DEFAULT_TEXT)
    first.close()
    second = Model(asr_model_file)  # the first is closed: nothing left to deafen
    assert "".join(second.transcribe_raw(sine(0.5))).endswith(DEFAULT_TEXT)
    del aligner
