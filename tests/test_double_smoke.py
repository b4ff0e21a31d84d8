"""Smoke tests of the libchatllm test double (tests/native), driven straight through ctypes.

The double stands in for chatllm.cpp's libchatllm.so in CI; it is not the engine. These tests pin
the behaviour qasr's binding and the leak lab rely on. Anything that leaks on purpose or aborts
runs in a child process so this one stays clean.
"""

from __future__ import annotations

import base64
import ctypes
import importlib.util
import json
import os
import struct
import subprocess
import sys
import textwrap
import threading
import wave
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

PRINT_FUNC = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p)
END_FUNC = ctypes.CFUNCTYPE(None, ctypes.c_void_p)

MODEL_TYPE_ASR = 0x1000010F
MODEL_TYPE_ALIGNER = 0x04000002
ASR_CHUNKS = ["language", " English", "<asr_text>", "hello", " world", " from", " the", " test", " double"]


def _load_build_module():
    spec = importlib.util.spec_from_file_location("qasr_native_build", HERE / "native" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bind(path: Path) -> ctypes.CDLL:
    """Load the double with the prototypes of bindings/libchatllm.h."""
    lib = ctypes.CDLL(str(path))
    p, s, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    for name, restype, argtypes in [
        ("chatllm_append_init_param", None, [s]),
        ("chatllm_init", i, []),
        ("chatllm_create", p, []),
        ("chatllm_destroy", i, [p]),
        ("chatllm_append_param", None, [p, s]),
        ("chatllm_start", i, [p, PRINT_FUNC, END_FUNC, p]),
        ("chatllm_restart", None, [p, s]),
        ("chatllm_user_input", i, [p, s]),
        ("chatllm_user_input_multimedia_msg", i, [p]),
        ("chatllm_multimedia_msg_prepare", None, [p]),
        ("chatllm_multimedia_msg_append", i, [p, s, s]),
        ("chatllm_abort_generation", None, [p]),
        ("chatllm_set_gen_max_tokens", None, [p, i]),
        ("chatllm_get_cursor", i, [p]),
        ("chatllm_show_statistics", None, [p]),
        ("qasr_double_identity", s, []),
        ("qasr_double_init_count", i, []),
    ]:
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


def write_model(path: Path, model_type: int) -> Path:
    """The smallest file the double accepts: ggmm header, model_type at offset_config."""
    offset_config = 32
    head = struct.pack("<4sIIII", b"ggmm", 1, offset_config, offset_config, offset_config)
    path.write_bytes(head.ljust(offset_config, b"\0") + struct.pack("<ii", model_type, 1))
    return path


def write_wav(path: Path, seconds: float, rate: int = 16000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * int(seconds * rate))
    return path


class Session:
    """One started model object and everything its callbacks received."""

    def __init__(self, lib: ctypes.CDLL, model: Path, *extra: str, on_chunk=None):
        self.lib = lib
        self.prints: list[tuple[int, str]] = []
        self.ends = 0
        self.threads: set[int] = set()
        self.on_chunk = on_chunk
        self._print = PRINT_FUNC(self._on_print)
        self._end = END_FUNC(self._on_end)
        self.obj = lib.chatllm_create()
        for word in ("-m", str(model), "--multimedia_file_tags", "{{", "}}", *extra):
            lib.chatllm_append_param(self.obj, word.encode())
        self.start_rc = lib.chatllm_start(self.obj, self._print, self._end, None)

    def _on_print(self, _ud, kind, text):
        self.prints.append((kind, text.decode()))
        self.threads.add(threading.get_ident())
        if kind == 0 and self.on_chunk:
            self.on_chunk(self)

    def _on_end(self, _ud):
        self.ends += 1

    def chunks(self) -> list[str]:
        return [t for k, t in self.prints if k == 0]

    def lines(self, kind: int) -> list[str]:
        return [t for k, t in self.prints if k == kind]

    def reset(self) -> None:
        self.prints.clear()
        self.ends = 0
        self.threads.clear()

    def ask(self, text: str) -> int:
        self.reset()
        return self.lib.chatllm_user_input(self.obj, text.encode())

    def close(self) -> None:
        self.lib.chatllm_destroy(self.obj)


@pytest.fixture(scope="module")
def lib_path(tmp_path_factory) -> Path:
    return _load_build_module().build_double(tmp_path_factory.mktemp("double"))


@pytest.fixture(scope="module")
def lib(lib_path) -> ctypes.CDLL:
    return bind(lib_path)


@pytest.fixture
def asr_model(tmp_path) -> Path:
    return write_model(tmp_path / "qwen3-asr-test.bin", MODEL_TYPE_ASR)


@pytest.fixture
def aligner_model(tmp_path) -> Path:
    return write_model(tmp_path / "aligner.bin", MODEL_TYPE_ALIGNER)


@pytest.fixture
def wav(tmp_path) -> Path:
    return write_wav(tmp_path / "one-second.wav", 1.0)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    # The double reads QASR_DOUBLE_* at every call; never inherit them from the outside.
    for key in list(os.environ):
        if key.startswith("QASR_DOUBLE_"):
            monkeypatch.delenv(key)


def run_child(lib_path: Path, body: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Run `body` in a fresh interpreter with this module imported as `smoke` and the double as `lib`."""
    prelude = textwrap.dedent(
        f"""
        import importlib.util, sys
        from pathlib import Path
        spec = importlib.util.spec_from_file_location("smoke", {str(Path(__file__).resolve())!r})
        smoke = importlib.util.module_from_spec(spec); spec.loader.exec_module(smoke)
        lib = smoke.bind(Path({str(lib_path)!r}))
        """
    )
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("QASR_DOUBLE_")}
    child_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(body), *args],
        capture_output=True, text=True, env=child_env, timeout=120, check=False,
    )


def test_build_is_cached(lib_path):
    mtime = lib_path.stat().st_mtime_ns
    assert _load_build_module().build_double(lib_path.parent) == lib_path
    assert lib_path.stat().st_mtime_ns == mtime


def test_identity_and_init(lib):
    assert lib.qasr_double_identity() == b"qasr test double"
    before = lib.qasr_double_init_count()
    assert lib.chatllm_init() == 0
    assert lib.qasr_double_init_count() == before + 1


def test_init_rejects_missing_ggml_dir(lib_path, tmp_path):
    body = f"""
        lib.chatllm_append_init_param(b"--ggml_dir")
        lib.chatllm_append_init_param({str(tmp_path / 'no-such-dir').encode()!r})
        print(lib.chatllm_init(), lib.qasr_double_init_count())
    """
    proc = run_child(lib_path, body)
    assert proc.stdout.split() == ["1", "1"], proc.stderr


def test_asr_turn(lib, asr_model, wav):
    s = Session(lib, asr_model, "-t", "2")
    assert s.start_rc == 0
    assert "qasr test double" in s.lines(1)[0]
    info = json.loads(s.lines(13)[0])
    assert info["name"] == "qwen3-asr-test" and info["purpose"] == "ASR"
    assert info["capabilities"] == ["ASR"] and info["context_length"] == 65536

    assert s.ask(f"{{{{audio:{wav}}}}}") == 0
    assert s.chunks() == ASR_CHUNKS
    assert s.ends == 2
    assert lib.chatllm_get_cursor(s.obj) == len(ASR_CHUNKS)
    lib.chatllm_restart(s.obj, None)
    assert lib.chatllm_get_cursor(s.obj) == 0
    assert lib.chatllm_user_input_multimedia_msg(s.obj) == -1  # as upstream, for ASR models
    s.close()


def test_asr_language_text_and_max_tokens(lib, asr_model, wav, monkeypatch):
    s = Session(lib, asr_model, "--set", "language", "German", "--max_length", "2048")
    assert json.loads(s.lines(13)[0])["context_length"] == 2048
    monkeypatch.setenv("QASR_DOUBLE_TEXT", "guten  morgen")
    assert s.ask(f"{{{{audio:{wav}}}}}") == 0
    assert s.chunks() == ["<asr_text>", "guten", " morgen"]
    lib.chatllm_set_gen_max_tokens(s.obj, 2)
    assert s.ask(f"{{{{audio:{wav}}}}}") == 0
    assert s.chunks() == ["<asr_text>", "guten"] and s.ends == 2
    s.close()


def test_errors(lib, asr_model, wav, tmp_path, monkeypatch):
    obj = lib.chatllm_create()
    lines = []
    on_print = PRINT_FUNC(lambda _u, k, t: lines.append((k, t.decode())))
    on_end = END_FUNC(lambda _u: None)
    assert lib.chatllm_user_input(obj, b"{{audio:x}}") == -1  # not started
    assert lib.chatllm_start(obj, on_print, on_end, None) == -1
    assert lines == [(2, "model path is required")]
    lib.chatllm_destroy(obj)

    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"GGUF" + b"\0" * 32)
    s = Session(lib, junk)
    assert s.start_rc == 1 and s.lines(2) == ["model file is broken (bad magic): GGUF"]
    s.close()

    s = Session(lib, asr_model)
    assert s.ask("{{audio:/no/such.wav}}") == -2
    assert s.lines(2) == ["failed to load audio: /no/such.wav"] and s.ends == 0
    monkeypatch.setenv("QASR_DOUBLE_ERROR_AT", "inference")
    assert s.ask(f"{{{{audio:{wav}}}}}") == -3
    assert s.lines(2) == ["injected error at inference"] and s.ends == 0
    s.close()
    monkeypatch.setenv("QASR_DOUBLE_ERROR_AT", "start")
    s = Session(lib, asr_model)
    assert s.start_rc == 1 and s.lines(2) == ["injected error at start"]
    s.close()


def _check_alignment(items, words, duration_ms):
    assert [i["text"] for i in items] == words
    edges = [t for i in items for t in (i["start"], i["end"])]
    assert all(t % 80 == 0 for t in edges)
    assert edges == sorted(edges) and edges[-1] <= duration_ms


def test_aligner_user_input_and_multimedia_msg(lib, aligner_model, wav):
    s = Session(lib, aligner_model, "--set", "format", "json")
    assert json.loads(s.lines(13)[0])["purpose"] == "Chat"
    assert s.ask(f"{{{{audio:{wav}}}}}Hello big world") == 0
    assert len(s.chunks()) == 1 and s.ends == 2
    items = json.loads(s.chunks()[0])
    _check_alignment(items, ["Hello", "big", "world"], 1000)
    assert items[-1]["end"] > 800

    lib.chatllm_multimedia_msg_prepare(s.obj)
    assert lib.chatllm_multimedia_msg_append(s.obj, b"audio", base64.b64encode(wav.read_bytes())) == 0
    assert lib.chatllm_multimedia_msg_append(s.obj, b"text", "你好，world".encode()) == 0
    s.reset()
    assert lib.chatllm_user_input_multimedia_msg(s.obj) == 0
    _check_alignment(json.loads(s.chunks()[0]), ["你", "好", "world"], 1000)
    assert s.ends == 2
    s.close()


def test_native_thread_delivery_and_abort_from_callback(lib, asr_model, wav, monkeypatch):
    monkeypatch.setenv("QASR_DOUBLE_THREAD", "1")

    def abort_after_two(sess):
        if len(sess.chunks()) == 2:
            lib.chatllm_abort_generation(sess.obj)

    s = Session(lib, asr_model, on_chunk=abort_after_two)
    assert s.ask(f"{{{{audio:{wav}}}}}") == 0
    assert s.chunks() == ASR_CHUNKS[:2] and s.ends == 2
    assert s.threads and threading.get_ident() not in s.threads
    s.on_chunk = None
    assert s.ask(f"{{{{audio:{wav}}}}}") == 0  # an old abort does not carry over
    assert s.chunks() == ASR_CHUNKS
    s.close()


def test_abort_from_another_thread_while_streaming(lib, asr_model, wav, monkeypatch):
    monkeypatch.setenv("QASR_DOUBLE_TOKEN_DELAY_MS", "40")
    first = threading.Event()
    s = Session(lib, asr_model, on_chunk=lambda _s: first.set())
    result = []
    worker = threading.Thread(target=lambda: result.append(s.ask(f"{{{{audio:{wav}}}}}")))
    worker.start()
    assert first.wait(5)
    lib.chatllm_abort_generation(s.obj)
    worker.join(5)
    assert result == [0] and 1 <= len(s.chunks()) < len(ASR_CHUNKS) and s.ends == 2
    s.close()


MEMORY_PROBE = """
    import ctypes, json, os
    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in
                    "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    def sample():
        m = libc.mallinfo2()
        status = dict(l.split(":", 1) for l in open("/proc/self/status"))
        return {"rss_anon": int(status["RssAnon"].split()[0]) * 1024,
                "live": m.uordblks + m.hblkhd, "free_held": m.fordblks}
    model = smoke.write_model(Path(sys.argv[1]) / "m.bin", smoke.MODEL_TYPE_ASR)
    wav = smoke.write_wav(Path(sys.argv[1]) / "a.wav", 0.1)
    s = smoke.Session(lib, model)
    def turns(n, **env):
        os.environ.update(env)
        for _ in range(n):
            assert s.ask("{{audio:%s}}" % wav) == 0
        for k in env:
            del os.environ[k]
    turns(3)
    base = sample()
"""


def _child_memory(lib_path, tmp_path, body) -> dict:
    proc = run_child(lib_path, textwrap.dedent(MEMORY_PROBE) + textwrap.dedent(body), str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_leak_knob_grows_rss_and_live_heap(lib_path, tmp_path):
    out = _child_memory(lib_path, tmp_path, """
        turns(8, QASR_DOUBLE_LEAK_INFERENCE=str(4 << 20))
        after = sample()
        print(json.dumps({k: after[k] - base[k] for k in base}))
    """)
    assert out["live"] >= 31 << 20 and out["rss_anon"] >= 28 << 20


def test_retain_knob_is_retention_not_leak(lib_path, tmp_path):
    out = _child_memory(lib_path, tmp_path, """
        turns(8, QASR_DOUBLE_RETAIN_BYTES=str(2 << 20))
        held = sample()
        libc.malloc_trim(0)
        trimmed = sample()
        print(json.dumps({"live": held["live"] - base["live"], "free_held": held["free_held"] - base["free_held"],
                          "rss": held["rss_anon"] - base["rss_anon"],
                          "trim_gain": held["rss_anon"] - trimmed["rss_anon"]}))
    """)
    assert abs(out["live"]) < 64 << 10
    assert out["free_held"] >= 15 << 20 and out["rss"] >= 14 << 20
    assert out["trim_gain"] >= 12 << 20


def test_grow_knob_plateaus(lib_path, tmp_path):
    out = _child_memory(lib_path, tmp_path, """
        env = dict(QASR_DOUBLE_GROW_BYTES=str(1 << 20), QASR_DOUBLE_PLATEAU_BYTES=str(3 << 20))
        turns(3, **env)
        warm = sample()
        turns(5, **env)
        late = sample()
        print(json.dumps({"warm": warm["live"] - base["live"], "late": late["live"] - warm["live"]}))
    """)
    assert out["warm"] >= 3 << 20 and abs(out["late"]) < 64 << 10


@pytest.mark.parametrize(
    ("env", "tail", "message"),
    [
        ({"QASR_DOUBLE_ABORT_IN_DESTROY": "1"}, "s.close()", "free(): invalid pointer"),
        ({"QASR_DOUBLE_ABORT_AT_CALL": "2"}, "s.ask('{{audio:%s}}' % wav); s.ask('x')",
         "qasr double: injected abort at call 2"),
        ({"QASR_DOUBLE_ABORT_AT_EXIT": "1"}, "", "free(): invalid pointer"),
    ],
)
def test_injected_aborts(lib_path, tmp_path, env, tail, message):
    body = f"""
        from pathlib import Path
        model = smoke.write_model(Path({str(tmp_path)!r}) / "m.bin", smoke.MODEL_TYPE_ASR)
        wav = smoke.write_wav(Path({str(tmp_path)!r}) / "a.wav", 0.1)
        s = smoke.Session(lib, model)
        {tail}
        print("survived", flush=True)
    """
    proc = run_child(lib_path, body, **env)
    assert proc.returncode == -6, (proc.returncode, proc.stderr)
    assert message in proc.stderr
    assert ("survived" in proc.stdout) == ("AT_EXIT" in next(iter(env)))


def test_abort_at_exit_is_skipped_by_os_exit(lib_path, tmp_path):
    body = f"""
        import os
        s = smoke.Session(lib, smoke.write_model(Path({str(tmp_path)!r}) / "m.bin", smoke.MODEL_TYPE_ASR))
        assert s.start_rc == 0
        os._exit(0)
    """
    proc = run_child(lib_path, body, QASR_DOUBLE_ABORT_AT_EXIT="1")
    assert proc.returncode == 0, proc.stderr


def test_compiled_in_defaults_apply_and_the_environment_wins(tmp_path):
    build = _load_build_module().build_double
    variant = build(tmp_path / "variant", {"text": "bonjour", "abort_in_destroy": "1"})
    assert build(tmp_path / "variant", {"text": "bonjour", "abort_in_destroy": "1"}) == variant  # cached
    body = f"""
        from pathlib import Path
        model = smoke.write_model(Path({str(tmp_path)!r}) / "m.bin", smoke.MODEL_TYPE_ASR)
        wav = smoke.write_wav(Path({str(tmp_path)!r}) / "a.wav", 0.1)
        s = smoke.Session(lib, model)
        s.ask('{{{{audio:%s}}}}' % wav)
        print("|".join(s.chunks()), flush=True)
        s.close()
        print("survived", flush=True)
    """
    baked = run_child(variant, body)
    assert baked.returncode == -6 and "free(): invalid pointer" in baked.stderr
    assert baked.stdout.splitlines() == ["language| English|<asr_text>|bonjour"]
    overridden = run_child(variant, body, QASR_DOUBLE_ABORT_IN_DESTROY="0", QASR_DOUBLE_TEXT="hi")
    assert overridden.returncode == 0, overridden.stderr
    assert overridden.stdout.splitlines() == ["language| English|<asr_text>|hi", "survived"]
    with pytest.raises(ValueError):
        build(tmp_path / "bad", {"text": "two words"})


def test_last_started_prints_mirrors_upstreams_shared_interceptor(lib, asr_model, wav, monkeypatch):
    """QASR_DOUBLE_LAST_STARTED_PRINTS=1: the first object's chunks reach the callback of the object
    started last, and its own callback gets one f_end, the receiver's two (upstream 4a4310e, measured
    with tests/two_models_repro.py); destroying the receiver gives each object its own text back."""
    monkeypatch.setenv("QASR_DOUBLE_LAST_STARTED_PRINTS", "1")
    first = Session(lib, asr_model)
    second = Session(lib, asr_model, "--set", "language", "English")
    assert first.start_rc == second.start_rc == 0
    second.reset()
    assert first.ask(f"{{{{audio:{wav}}}}}") == 0
    assert (first.chunks(), first.ends) == ([], 1)
    assert (second.chunks(), second.ends) == (ASR_CHUNKS, 2)  # the first object's words, language included
    first.reset()
    assert second.ask(f"{{{{audio:{wav}}}}}") == 0
    assert (second.chunks(), second.ends) == ([c for c in ASR_CHUNKS if c not in ("language", " English")], 2)
    assert (first.chunks(), first.ends) == ([], 0)
    second.close()  # upstream would keep a dangling pointer to it; the double forgets it
    assert first.ask(f"{{{{audio:{wav}}}}}") == 0
    assert (first.chunks(), first.ends) == (ASR_CHUNKS, 2)
    first.close()
