"""The ``qasr`` CLI as a user runs it: a child process, with the test double as its engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import double_env, run_qasr, sine
from modelfiles import model_bytes, write_aligner, write_model

RESULT_FIELDS = {
    "source", "language", "text", "raw_text", "audio_seconds", "load_seconds", "inference_seconds",
    "ttft_seconds", "tokens", "tokens_per_second", "rtf", "peak_rss_bytes",
}


@pytest.fixture()
def env(double_lib: Path) -> dict[str, str]:
    # Mimic upstream: exiting the interpreter after a model was loaded aborts. The CLI must not.
    return double_env(double_lib, abort_at_exit="1")


def test_json_has_every_field_and_exit_zero_despite_exit_abort(env: dict[str, str], wav_file: Path, asr_model_file: Path) -> None:
    r = run_qasr(["transcribe", str(wav_file), "--model", str(asr_model_file), "--format", "json"], env)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert RESULT_FIELDS <= data.keys()
    assert data["text"] == "hello world from the test double"
    assert data["language"] == "English"
    assert data["audio_seconds"] == 1.0 and data["tokens"] == 9
    assert data["peak_rss_bytes"] > 10_000_000
    assert "free(): invalid pointer" not in r.stderr


def test_txt_for_several_files_and_output_dir(env: dict[str, str], tmp_path: Path, asr_model_file: Path) -> None:
    files = []
    for name in ("a.wav", "b.flac"):
        soundfile.write(str(tmp_path / name), sine(0.5), 16_000)
        files.append(str(tmp_path / name))
    r = run_qasr(["transcribe", *files, "-m", str(asr_model_file)], env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"{f}: hello world from the test double" for f in files]
    out = tmp_path / "out"
    r = run_qasr(["transcribe", *files, "-m", str(asr_model_file), "-f", "json", "-o", str(out)], env)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.json", "b.json"]
    assert json.loads((out / "b.json").read_text())["text"] == "hello world from the test double"


def test_jsonl_stream_events_arrive_before_the_end(double_lib: Path, wav_file: Path, asr_model_file: Path) -> None:
    env = double_env(double_lib, token_delay_ms="150")
    proc = subprocess.Popen(
        [sys.executable, "-m", "qasr", "transcribe", str(wav_file), "-m", str(asr_model_file), "-f", "jsonl", "--stream"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline())
    still_running = proc.poll() is None
    rest = [json.loads(line) for line in proc.stdout]
    proc.wait(timeout=60)
    assert still_running, "the first chunk only appeared after the process ended"
    assert first["event"] == "chunk" and first["text"] == "hello"
    assert rest[-1]["event"] == "result" and rest[-1]["text"] == "hello world from the test double"
    assert proc.returncode == 0


def test_txt_stream_prints_the_text(env: dict[str, str], wav_file: Path, asr_model_file: Path) -> None:
    r = run_qasr(["transcribe", str(wav_file), "-m", str(asr_model_file), "--stream"], env)
    assert r.returncode == 0 and r.stdout == "hello world from the test double\n"


def test_one_bad_file_among_good_ones(env: dict[str, str], tmp_path: Path, wav_file: Path, asr_model_file: Path) -> None:
    r = run_qasr(["transcribe", str(tmp_path / "missing.wav"), str(wav_file), "-m", str(asr_model_file), "-f", "jsonl"], env)
    assert r.returncode == 2
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert "not found" in lines[0]["error"] and lines[1]["text"].startswith("hello")


def test_help_and_version() -> None:
    r = run_qasr(["--help"])
    assert r.returncode == 0 and "transcribe" in r.stdout
    r = run_qasr(["transcribe", "--help"])
    assert r.returncode == 0 and "--stream" in r.stdout and "Exit codes" in r.stdout
    r = run_qasr(["--version"])
    assert r.returncode == 0 and r.stdout.startswith("qasr ")


# ---------------------------------------------------------------------------------------------
# Bad inputs: each gives one line on stderr and a non-zero exit, never a traceback or a core dump.


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _case_files(tmp: Path) -> dict[str, Path]:
    soundfile.write(str(tmp / "short.wav"), np.zeros(800, np.float32), 16_000)
    soundfile.write(str(tmp / "nan.wav"), np.full(16_000, np.nan, np.float32), 16_000, subtype="FLOAT")
    soundfile.write(str(tmp / "silence.wav"), np.zeros(16_000, np.float32), 16_000)
    (tmp / "adir").mkdir()
    full = model_bytes()
    return {
        "good": tmp / "silence.wav",
        "model": write_model(tmp / "asr.bin"),
        "empty_audio": _write(tmp / "empty.wav", b""),
        "text_audio": _write(tmp / "notes.wav", b"just some text, not audio\n" * 20),
        "short": tmp / "short.wav",
        "nan": tmp / "nan.wav",
        "dir": tmp / "adir",
        "truncated_model": _write(tmp / "cut.bin", full[: len(full) - 100]),
        "gguf_model": _write(tmp / "x.gguf", b"GGUF" + full[4:]),
        "random_model": _write(tmp / "rand.bin", bytes(range(256)) * 8),
        "empty_model": _write(tmp / "empty.bin", b""),
        "aligner_model": write_aligner(tmp / "aligner.bin"),
        "bad_meta_model": write_model(tmp / "meta.bin", meta=b"{broken"),
    }


BAD_INPUTS = [
    # (id, args built from the case files, extra env, exit code, message on stderr)
    ("audio missing", lambda f: ["transcribe", str(f["dir"] / "nope.wav"), "-m", str(f["model"])], {}, 2, "audio file not found"),
    ("audio empty", lambda f: ["transcribe", str(f["empty_audio"]), "-m", str(f["model"])], {}, 2, "audio file is empty"),
    ("audio not audio", lambda f: ["transcribe", str(f["text_audio"]), "-m", str(f["model"])], {}, 2, "cannot decode audio"),
    ("audio too short", lambda f: ["transcribe", str(f["short"]), "-m", str(f["model"])], {}, 2, "too short"),
    ("audio NaN", lambda f: ["transcribe", str(f["nan"]), "-m", str(f["model"])], {}, 2, "NaN or infinite"),
    ("audio is a directory", lambda f: ["transcribe", str(f["dir"]), "-m", str(f["model"])], {}, 2, "is a directory"),
    ("model missing", lambda f: ["transcribe", str(f["good"]), "-m", str(f["dir"] / "none.bin")], {}, 2, "model file not found"),
    ("model truncated", lambda f: ["transcribe", str(f["good"]), "-m", str(f["truncated_model"])], {}, 2, "truncated"),
    ("model is GGUF", lambda f: ["transcribe", str(f["good"]), "-m", str(f["gguf_model"])], {}, 2, "GGUF file"),
    ("model random bytes", lambda f: ["transcribe", str(f["good"]), "-m", str(f["random_model"])], {}, 2, "bad magic"),
    ("model empty", lambda f: ["transcribe", str(f["good"]), "-m", str(f["empty_model"])], {}, 2, "model file is empty"),
    ("model is the aligner", lambda f: ["transcribe", str(f["good"]), "-m", str(f["aligner_model"])], {}, 2, "Qwen3-ASR model is needed"),
    ("model metadata corrupt", lambda f: ["transcribe", str(f["good"]), "-m", str(f["bad_meta_model"])], {}, 2, "corrupt metadata"),
    ("model is a directory", lambda f: ["transcribe", str(f["good"]), "-m", str(f["dir"])], {}, 2, "directory, not a file"),
    ("unknown language", lambda f: ["transcribe", str(f["good"]), "-m", str(f["model"]), "-l", "Klingon"], {}, 2, "not supported"),
    ("bad format", lambda f: ["transcribe", str(f["good"]), "-m", str(f["model"]), "-f", "xml"], {}, 2, "Invalid value"),
    ("threads zero", lambda f: ["transcribe", str(f["good"]), "-m", str(f["model"]), "-t", "0"], {}, 2, "Invalid value"),
    ("stream with json", lambda f: ["transcribe", str(f["good"]), "-m", str(f["model"]), "--stream", "-f", "json"], {}, 2, "--stream works with"),
    ("no model given", lambda f: ["transcribe", str(f["good"])], {}, 2, "qwen3-chatllm needs a Qwen3-ASR model: --model"),
    ("engine missing", lambda f: ["transcribe", str(f["good"]), "-m", str(f["model"])], {"QASR_CHATLLM_LIB": "/nonexistent/libchatllm.so"}, 3, "libchatllm not found; tried: /nonexistent/libchatllm.so"),
    ("engine not libchatllm", lambda f: ["transcribe", str(f["good"]), "-m", str(f["model"]), "--engine", str(f["empty_model"])], {}, 3, "cannot load"),
    ("engine error at load", lambda f: ["transcribe", str(f["good"]), "-m", str(f["model"])], {"QASR_DOUBLE_ERROR_AT": "start"}, 4, "injected error at start"),
    ("engine error at inference", lambda f: ["transcribe", str(f["good"]), "-m", str(f["model"])], {"QASR_DOUBLE_ERROR_AT": "inference"}, 4, "injected error at inference"),
]


@pytest.mark.parametrize(("case", "make_args", "extra_env", "code", "message"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input(tmp_path: Path, env: dict[str, str], case: str, make_args, extra_env: dict[str, str], code: int, message: str) -> None:  # type: ignore[no-untyped-def]
    files = _case_files(tmp_path)
    r = run_qasr(make_args(files), {**env, **extra_env})
    assert r.returncode == code, (r.returncode, r.stderr)
    assert message in r.stderr
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    assert len([line for line in r.stderr.splitlines() if line.startswith("qasr: error:")]) <= 1


def test_itn_and_zh_tw_keep_raw_and_final_text(double_lib: Path, wav_file: Path, asr_model_file: Path) -> None:
    env = double_env(double_lib, text="我的电话号码是 一三八零零一三八零零零 请回电", language="Chinese")
    r = run_qasr(["transcribe", str(wav_file), "-m", str(asr_model_file), "-f", "json", "--itn", "--zh-tw"], env)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["language"] == "Chinese"
    assert data["asr_text"] == "我的电话号码是 一三八零零一三八零零零 请回电"
    assert data["text"] == "我的電話號碼是 13800138000 請回電"
    assert data["raw_text"].startswith("language Chinese<asr_text>")
    r = run_qasr(["transcribe", str(wav_file), "-m", str(asr_model_file), "--stream", "--itn"], env)
    assert r.stdout.splitlines() == ["我的电话号码是 一三八零零一三八零零零 请回电", "我的电话号码是 13800138000 请回电"]
    r = run_qasr(["transcribe", str(wav_file), "-m", str(asr_model_file), "--opencc", "x2y"], env)
    assert r.returncode == 2 and "unknown --opencc target 'x2y'" in r.stderr


def test_text_commands_read_arguments_and_stdin() -> None:
    r = run_qasr(["text", "itn", "我的电话号码是一三八零零一三八零零零"])
    assert r.returncode == 0 and r.stdout == "我的电话号码是13800138000\n"
    r = subprocess.run([sys.executable, "-m", "qasr", "text", "convert", "--itn"], input="三百亿美元\nHello 世界\n",
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == "300億美元\nHello 世界\n"
    r = run_qasr(["text", "convert", "--to", "klingon", "x"])
    assert r.returncode == 2 and "valid targets" in r.stderr


def test_text_itn_date_and_time_styles() -> None:
    spoken = "二零二四年三月五号下午四点二十开会"
    r = run_qasr(["text", "itn", "--itn-date", "iso", "--itn-time", "unpadded", spoken])
    assert r.returncode == 0 and r.stdout == "2024-03-05下午4:20开会\n"
    r = run_qasr(["text", "itn", spoken])
    assert r.returncode == 0 and r.stdout == "2024年3月5号下午04:20开会\n"
    r = run_qasr(["text", "itn", "--itn-date", "slash", spoken])
    assert r.returncode == 2 and "choose one of: zh, iso" in r.stderr


def test_unwritable_outputs_are_one_line_errors(env: dict[str, str], tmp_path: Path, wav_file: Path, asr_model_file: Path) -> None:
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    r = run_qasr(["transcribe", str(wav_file), "-m", str(asr_model_file), "-o", str(a_file)], env)
    assert r.returncode == 2 and "cannot use --output-dir" in r.stderr and "Traceback" not in r.stderr
    aligner = write_aligner(tmp_path / "al.bin")
    r = run_qasr(["align", str(wav_file), "hello world", "-a", str(aligner), "-o", str(tmp_path / "no" / "x.srt")], env)
    assert r.returncode == 2 and "cannot write" in r.stderr and "Traceback" not in r.stderr
    r = run_qasr(["align", str(wav_file), "hello world", "-a", str(aligner), "-o", str(tmp_path)], env)
    assert r.returncode == 2 and "it is a directory" in r.stderr


def test_output_dir_rerun_replaces_instead_of_piling_up(env: dict[str, str], tmp_path: Path, wav_file: Path, asr_model_file: Path) -> None:
    out = tmp_path / "out"
    for _ in range(2):
        r = run_qasr(["transcribe", str(wav_file), "-m", str(asr_model_file), "-o", str(out)], env)
        assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["tone.txt"]


def test_context_from_text_or_file_and_word_times_in_json(env: dict[str, str], wav_file: Path, asr_model_file: Path,
                                                          aligner_model_file: Path, tmp_path: Path) -> None:
    hint = tmp_path / "terms.txt"
    hint.write_text("Qwen chatllm.cpp ForcedAligner\n", encoding="utf-8")
    r = run_qasr(["transcribe", str(wav_file), "-m", str(asr_model_file), "-f", "json", "--context", f"@{hint}",
                  "-a", str(aligner_model_file)], env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["context"] == "Qwen chatllm.cpp ForcedAligner" and data["context_echo"] is False
    assert [w["text"] for w in data["segments"][0]["words"]] == data["text"].split()
    echo = dict(env, QASR_DOUBLE_ECHO_CONTEXT="1")
    r = run_qasr(["transcribe", str(wav_file), "-m", str(asr_model_file), "-f", "json", "-c", "say these words back"], echo)
    assert r.returncode == 0 and json.loads(r.stdout)["text"] == ""
    assert "only repeated the context" in r.stderr
    r = run_qasr(["transcribe", str(wav_file), "-m", str(asr_model_file), "--context", f"@{tmp_path / 'nope.txt'}"], env)
    assert r.returncode == 2 and "--context file not found" in r.stderr and "Traceback" not in r.stderr


def test_the_app_builds_only_the_command_being_run() -> None:
    import typer

    from qasr.cli import main as cli_main

    everything = typer.main.get_command(cli_main.app)
    assert sorted(name for name, *_ in cli_main.COMMANDS) == sorted(everything.commands)  # type: ignore[attr-defined]
    one = typer.main.get_command(cli_main.build_app("lab"))
    assert list(one.commands) == ["lab"]  # type: ignore[attr-defined]
    assert cli_main.main(["transcribe"]) == 2  # no arguments: its own usage, exit 2
