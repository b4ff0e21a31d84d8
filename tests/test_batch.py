"""qasr batch without Ray: inputs, the manifest and resume rules, the attempt ledger, reassembly,
the actor class on the test double, layouts, outputs and the command's usage errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import double_env, run_qasr, sine

from qasr.batch.cluster import layout
from qasr.batch.inputs import expand_inputs
from qasr.batch.ledger import NO_TRACE, Ledger, ending
from qasr.batch.manifest import DONE, FAILED, Manifest, file_sha256, options_hash, row
from qasr.batch.outputs import parse_formats, render
from qasr.batch.pieces import assemble, prepare
from qasr.errors import UsageError
from qasr.spec import CallOptions, EngineSpec


def tone(path: Path, seconds: float = 1.0, freq: float = 440.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), sine(seconds, freq=freq), 16_000)
    return path


# -- inputs -------------------------------------------------------------------------------------


def test_directories_globs_and_files_give_stable_ids_and_relative_outputs(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    tone(root / "a.wav")
    tone(root / "calls" / "2024" / "b.flac")
    (root / "notes.txt").write_text("not audio")
    items = expand_inputs([str(root)])
    assert [(i.id, i.rel) for i in items] == [("a.wav", "a"), ("calls/2024/b.flac", "calls/2024/b")]
    globbed = expand_inputs([str(root / "calls" / "**" / "*.flac")])
    assert [(i.id, i.rel) for i in globbed] == [("2024/b.flac", "2024/b")]
    single = expand_inputs([str(root / "a.wav"), str(root / "a.wav")])  # the same file twice: once
    assert [i.id for i in single] == ["a.wav"]


def test_tables_give_paths_ids_and_per_input_options(tmp_path: Path) -> None:
    tone(tmp_path / "x.wav")
    tone(tmp_path / "sub" / "y.wav")
    (tmp_path / "in.jsonl").write_text(json.dumps({"path": "x.wav", "id": "call-1", "language": "en"}) + "\n"
                                       + json.dumps({"path": str(tmp_path / "sub" / "y.wav"), "context": "Qasr"}) + "\n")  # fmt: skip
    items = expand_inputs([str(tmp_path / "in.jsonl")])
    assert (items[0].id, items[0].rel, items[0].language, Path(items[0].path)) == ("call-1", "call-1", "en", tmp_path / "x.wav")
    assert items[1].context == "Qasr" and items[1].path == str(tmp_path / "sub" / "y.wav")
    (tmp_path / "in.csv").write_text("path,id\nx.wav,first\nsub/y.wav,\n")
    assert [i.id for i in expand_inputs([str(tmp_path / "in.csv")])] == ["first", "sub/y.wav"]
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"path": ["x.wav"], "id": ["p"]}), tmp_path / "in.parquet")
    assert [i.id for i in expand_inputs([str(tmp_path / "in.parquet")])] == ["p"]


@pytest.mark.parametrize(
    "table, message",
    [
        ('{"path": "gone.wav"}\n', "input not found"),
        ('{"id": "x"}\n', "has no 'path'"),
        ('{"path": "x.wav", "id": "../../etc/x"}\n', "outside OUT_DIR"),
        ('{"path": "x.wav", "id": "d"}\n{"path": "z.wav", "id": "d"}\n', "two inputs have the id"),
        ("[1]\n", "must be a JSON object"),
    ],
)
def test_bad_inputs_are_usage_errors_before_any_work(tmp_path: Path, table: str, message: str) -> None:
    tone(tmp_path / "x.wav")
    tone(tmp_path / "z.wav")
    (tmp_path / "t.jsonl").write_text(table)
    with pytest.raises(UsageError, match=message):
        expand_inputs([str(tmp_path / "t.jsonl")])


def test_missing_files_and_empty_globs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="input not found"):
        expand_inputs([str(tmp_path / "nope.wav")])
    with pytest.raises(UsageError, match="no file matches"):
        expand_inputs([str(tmp_path / "*.wav")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no audio files"):
        expand_inputs([str(tmp_path / "empty")])


# -- manifest -----------------------------------------------------------------------------------


def test_manifest_resumes_from_a_crash_and_compacts(tmp_path: Path) -> None:
    m = Manifest(tmp_path)
    m.record(row("a", "/a.wav", FAILED, error="boom", sha256=None))
    m.record(row("a", "/a.wav", DONE, sha256="s1", options_hash="h", audio_seconds=2.0, outputs=["a.json"]))
    m.record(row("b", "/b.wav", FAILED, error="cannot decode", sha256="s2", options_hash="h"))
    with open(tmp_path / "manifest.jsonl", "a") as fh:
        fh.write('{"kind": "input", "id": "c", "sta')  # killed mid-line
    again = Manifest(tmp_path)
    assert set(again.rows) == {"a", "b"}
    assert again.finished("a", "s1", "h") is not None
    assert again.finished("a", "other-bytes", "h") is None and again.finished("a", "s1", "other-options") is None
    assert again.finished("b", "s2", "h") is not None  # kept: the same bytes fail the same way
    assert again.finished("b", "s2", "h", retry_failed=True) is None
    again.finish()
    lines = (tmp_path / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line)["kind"] == "input" for line in lines)
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "manifest.parquet").to_pylist()
    assert [(r["id"], r["status"], r["outputs"]) for r in table] == [("a", "done", ["a.json"]), ("b", "failed", [])]


def test_options_hash_follows_what_changes_a_transcript(tmp_path: Path) -> None:
    model = tmp_path / "m.bin"
    model.write_bytes(b"x" * 10)
    spec, calls = EngineSpec(model=str(model)), CallOptions()
    base = options_hash(spec, calls, ("json",))
    assert options_hash(spec.replace(threads=7, engine="/elsewhere/libchatllm.so"), calls, ("json",)) == base
    assert options_hash(spec, calls.replace(language="Chinese"), ("json",)) != base
    assert options_hash(spec, calls, ("json", "srt")) != base
    model.write_bytes(b"x" * 11)  # another model file
    assert options_hash(spec, calls, ("json",)) != base


# -- the ledger of attempts ---------------------------------------------------------------------


def _die_with_faulthandler(fault: Path, how: str) -> None:
    code = (f"import faulthandler, os, signal; fh = open({str(fault)!r}, 'w'); faulthandler.enable(file=fh); "
            f"os.kill(os.getpid(), signal.{how})")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, timeout=60)


def test_attempts_are_counted_and_a_poison_piece_is_refused_with_its_signal(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / ".qasr-batch", "run1")
    ledger.create()
    aborted, killed = tmp_path / "p1.log", tmp_path / "p2.log"
    _die_with_faulthandler(aborted, "SIGABRT")
    _die_with_faulthandler(killed, "SIGKILL")
    assert ending(aborted).startswith("SIGABRT (signal 6)") and ending(killed) == NO_TRACE
    assert ledger.begin("k", 0, 1, aborted) is None
    assert ledger.begin("k", 0, 1, aborted) is None
    refused = ledger.begin("k", 0, 1, killed)
    assert refused is not None and refused.attempts == 2 and refused.signal == "SIGABRT (signal 6)"
    assert "died on this input 2 times" in refused.message
    assert ledger.begin("k", 1, 1, aborted) is None  # another piece counts on its own
    ledger.save("k", 1, {"text": "hi"})
    assert ledger.result("k", 1) == {"text": "hi"} and ledger.result("k", 0) is None
    ledger.forget("k")
    ledger.close_run()
    assert ledger.result("k", 1) is None and not ledger.run.exists()


# -- pieces and reassembly ----------------------------------------------------------------------


def _piece_result(text: str, seconds: float) -> dict[str, object]:
    return {"language": "English", "text": text, "asr_text": text, "raw_text": f"language English<asr_text>{text}",
            "segments": [{"id": 0, "start": 0.0, "end": seconds, "text": text, "asr_text": text, "words": None}],
            "audio_seconds": seconds, "load_seconds": 0.5, "inference_seconds": 1.0, "ttft_seconds": 0.1, "tokens": 4,
            "tokens_per_second": 20.0, "rtf": 1.0 / seconds, "engine_calls": 1, "no_speech": False, "loops_repaired": 0,
            "model": "asr", "context": None, "context_echo": False, "warnings": []}  # fmt: skip


def test_pieces_come_back_in_order_on_the_file_s_clock() -> None:
    parts = [(40.0, _piece_result("third", 10.0)), (0.0, _piece_result("first", 20.0)), (20.5, _piece_result("second", 19.0))]
    result = assemble("/long.wav", 60.0, parts)
    assert result.text == "first second third"
    assert [(s.id, s.start, s.end) for s in result.segments] == [(0, 0.0, 20.0), (1, 20.5, 39.5), (2, 40.0, 50.0)]
    f = result.figures
    assert (f.audio_seconds, f.inference_seconds, f.engine_calls, f.tokens, f.rtf) == (60.0, 3.0, 3, 12, 0.05)


def test_prepare_fails_a_bad_file_as_a_row_and_keeps_a_short_one_whole(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF nonsense")
    base = {"id": "bad.wav", "path": str(bad), "options": "{}", "options_hash": "h", "max_chunk": 30.0}
    [failed] = prepare(base)
    assert failed["status"] == "failed" and "cannot decode audio" in failed["error"] and failed["sha256"] == file_sha256(bad)
    good = tone(tmp_path / "good.wav", 3.0)
    [piece] = prepare({**base, "id": "good.wav", "path": str(good)})
    assert (piece["status"], piece["pieces"], piece["start"], piece["end"]) == ("todo", 1, 0.0, 3.0)
    assert len(np.frombuffer(piece["samples"], np.float32)) == 48_000


# -- the actor class, in this process on the double ----------------------------------------------


def test_the_actor_transcribes_refuses_a_poison_piece_and_retires(double_lib: Path, asr_model_file: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from qasr.batch.actor import Transcriber

    import faulthandler

    monkeypatch.setenv("QASR_CHATLLM_LIB", str(double_lib))
    request_cleanup = faulthandler.is_enabled()
    ledger = Ledger(tmp_path / ".qasr-batch", "r")
    ledger.create()
    actor = Transcriber(EngineSpec(model=str(asr_model_file)).to_json(), str(ledger.root), "r", retries=1, max_requests=2)
    [piece] = prepare({"id": "t.wav", "path": str(tone(tmp_path / "t.wav", 2.0)), "options": CallOptions().to_json(),
                       "options_hash": "h", "max_chunk": 30.0})  # fmt: skip
    batch = {k: np.array([v], dtype=object) for k, v in piece.items()}
    out = actor(batch)
    assert out["status"] == ["done"] and json.loads(out["result"][0])["text"] == "hello world from the test double"
    assert not actor.retire and actor.served == 1
    again = actor(batch)  # delivered twice: served from the ledger, not the engine
    assert again["status"] == ["done"] and actor.served == 1
    poison = {**batch, "key": np.array(["poison"], dtype=object)}
    for _ in range(2):  # two earlier attempts that never finished (their processes died)
        assert ledger.begin("poison", 0, 1, tmp_path / "none.log") is None
    refused = actor(poison)
    assert refused["status"] == ["failed"] and "died on this input 2 times" in refused["error"][0]
    actor(batch | {"key": np.array(["other"], dtype=object)})
    assert actor.served == 2 and actor.retire  # --max-requests 2: it leaves at its next call
    if request_cleanup:  # the actor pointed this process's faulthandler at its file: give it back
        faulthandler.enable(file=sys.__stderr__)


# -- layouts, outputs, the command --------------------------------------------------------------


@pytest.mark.parametrize(
    "cpus, actors, threads, expected",
    [(2, None, None, (2, 1)), (8, None, None, (8, 1)), (1, None, None, (1, 1)), (2, 2, None, (2, 1)), (6, None, 3, (2, 3)), (16, 3, None, (3, 5))],
)
def test_layouts_fit_the_cores(cpus: int, actors: int | None, threads: int | None, expected: tuple[int, int]) -> None:
    got = layout(cpus, actors, threads)
    assert got == expected and got[0] * got[1] <= cpus


def test_layouts_that_oversubscribe_are_refused() -> None:
    with pytest.raises(UsageError, match="oversubscribe"):
        layout(2, 2, 2)
    with pytest.raises(UsageError, match="more than the 2 CPU"):
        layout(2, None, 4)


def test_formats_and_their_renderings() -> None:
    assert parse_formats("json, srt,json,VTT") == ("json", "srt", "vtt")
    with pytest.raises(UsageError, match="unknown --format"):
        parse_formats("json,docx")
    result = assemble("/a.wav", 4.0, [(0.0, _piece_result("hello there", 2.0)), (2.0, _piece_result("again", 2.0))])
    assert render(result, "txt") == "hello there again\n"
    assert json.loads(render(result, "json"))["text"] == "hello there again"
    srt = render(result, "srt")
    assert srt.startswith("1\n00:00:00,000 --> ") and "again" in srt
    assert render(result, "vtt").startswith("WEBVTT")


def test_usage_errors_come_before_ray(tmp_path: Path, double_lib: Path, asr_model_file: Path) -> None:
    env = double_env(double_lib)
    missing = run_qasr(["batch", str(tmp_path / "gone.wav"), "-o", str(tmp_path / "out"), "-m", str(asr_model_file)], env=env)
    assert missing.returncode == 2 and "input not found" in missing.stderr and "Traceback" not in missing.stderr
    good = tone(tmp_path / "a.wav")
    bad_format = run_qasr(["batch", str(good), "-o", str(tmp_path / "out"), "-m", str(asr_model_file), "-f", "docx"], env=env)
    assert bad_format.returncode == 2 and "unknown --format" in bad_format.stderr
    no_model = run_qasr(["batch", str(good), "-o", str(tmp_path / "out")], env={k: v for k, v in env.items() if k != "QASR_MODEL"})
    assert no_model.returncode == 2 and "give a model" in no_model.stderr
    assert not (tmp_path / "out" / "manifest.jsonl").exists()


def test_a_missing_ray_is_one_clear_line(tmp_path: Path, double_lib: Path, asr_model_file: Path) -> None:
    good = tone(tmp_path / "a.wav")
    code = ("import sys; sys.modules['ray'] = None; from qasr.cli.main import main; "
            f"sys.exit(main(['batch', {str(good)!r}, '-o', {str(tmp_path / 'out')!r}, '-m', {str(asr_model_file)!r}]))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=double_env(double_lib), timeout=120)
    assert done.returncode == 2 and "pip install 'qasr[cluster]'" in done.stderr and "Traceback" not in done.stderr


def test_the_batch_command_is_registered_and_ray_stays_out_of_other_commands() -> None:
    help_text = run_qasr(["batch", "--help"])
    assert help_text.returncode == 0 and "--cluster" in help_text.stdout and "--max-worker-rss" in help_text.stdout
    code = "import sys; from qasr.cli.main import main; main(['transcribe', '--help']); print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**os.environ})
    assert out.stdout.strip().endswith("False")


def test_the_benchmark_s_files_are_distinct_and_as_long_as_asked(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_batch

    files = bench_batch.make_files(tmp_path, 3, 5.0)
    assert [soundfile.info(str(f)).duration for f in files] == [5.0, 5.0, 5.0]
    assert len({file_sha256(f) for f in files}) == 3  # no two the same bytes: the manifest keys stay apart
