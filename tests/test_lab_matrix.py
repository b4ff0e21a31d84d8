"""``qasr lab matrix --engine A --engine B``: one scenario on several libchatllm builds, side by side.

The builds are the test double compiled with different knobs baked in (tests/native/README.md,
compiled-in defaults), so they behave differently under one environment, as two engine builds do.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import soundfile
from conftest import engine_env, run_qasr, sine
from modelfiles import write_model

from qasr.errors import UsageError
from qasr.lab.engines import resolve_engines, split_label


@pytest.fixture()
def inputs(tmp_path: Path) -> list[str]:
    audio = tmp_path / "clip.wav"
    soundfile.write(str(audio), sine(0.5), 16_000)
    return ["-m", str(write_model(tmp_path / "asr.bin")), "--audio", str(audio), "--no-peaks", "--results", str(tmp_path / "results")]


def matrix(args: list[str]) -> tuple[dict, str]:
    r = run_qasr(["lab", "matrix", *args, "--json"], engine_env(), timeout=300)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    return doc, (Path(doc["dir"]) / "matrix.md").read_text()


def test_two_builds_leak_and_not_glibc_only_by_default(double_builds: dict[str, Path], inputs: list[str]) -> None:
    doc, md = matrix(["restart", *inputs, "-n", "100", "--engine", f"fixed={double_builds['clean']}", "--engine", f"leaky={double_builds['leaky']}"])
    rows = doc["rows"]
    assert [(r["engine"], r["allocator"]) for r in rows] == [("fixed", "glibc"), ("leaky", "glibc")]  # no --allocators: glibc only
    fixed, leaky = rows
    assert fixed["verdict"] == "NO_LEAK" and leaky["verdict"] == "LEAK"
    assert leaky["heap_live"]["slope_bytes_per_iter"] == pytest.approx(1 << 20, rel=0.05)
    assert fixed["engine_path"] == str(double_builds["clean"].resolve()) and fixed["status"] == "completed" and fixed["crash"] is None
    assert fixed["engine_identity"]["sha256"] != leaky["engine_identity"]["sha256"]
    assert leaky["engine_identity"]["size"] == double_builds["leaky"].stat().st_size
    assert 0 < fixed["median_seconds_per_iteration"] < 1
    assert Path(doc["dir"]).name.endswith("-restart") and Path(doc["dir"]).parent.name == "matrix"
    assert json.loads((Path(doc["dir"]) / "matrix.json").read_text()) == rows
    assert md.startswith("# Engine matrix: `restart`")
    assert "| fixed | glibc | completed | 100 | NO_LEAK " in md and "| leaky | glibc | completed | 100 | LEAK " in md
    assert f"| leaky | `{double_builds['leaky'].resolve()}` | `{leaky['engine_identity']['sha256']}` |" in md
    for r in rows:
        assert (Path(r["run_dir"]) / "report.md").is_file()


def test_a_build_that_aborts_in_destroy_says_where(double_builds: dict[str, Path], inputs: list[str], tmp_path: Path) -> None:
    copy = tmp_path / "copy" / "libchatllm.so"  # the same bytes at another path: the same identity
    copy.parent.mkdir()
    shutil.copy2(double_builds["clean"], copy)
    doc, md = matrix(["reload", *inputs, "-n", "3", "--allocators", "glibc,trim", "--engine", f"fixed={double_builds['clean']}",
                      "--engine", f"upstream-4a4310e={double_builds['aborting']}", "--engine", f"copy={copy.parent}"])
    rows = {(r["engine"], r["allocator"]): r for r in doc["rows"]}
    assert list(rows) == [(e, a) for e in ("fixed", "upstream-4a4310e", "copy") for a in ("glibc", "trim")]
    crashed = rows[("upstream-4a4310e", "trim")]
    assert crashed["status"] == "crashed" and crashed["iterations"] == 0
    assert crashed["crash"] == {"signal_name": "SIGABRT", "exit_code": -6, "iteration": 1, "phase": "destroy"}
    assert "| upstream-4a4310e | glibc | crashed: SIGABRT in iteration 1, phase destroy | 0 | n/a |" in md
    assert rows[("fixed", "glibc")]["status"] == rows[("copy", "trim")]["status"] == "completed"
    assert rows[("copy", "glibc")]["engine_path"] == str(copy.resolve())  # a directory means its libchatllm.so
    same = {rows[(e, "glibc")]["engine_identity"]["sha256"] for e in ("fixed", "copy")}
    assert len(same) == 1 and same != {crashed["engine_identity"]["sha256"]}


def test_a_missing_engine_stops_before_any_run(double_builds: dict[str, Path], inputs: list[str], tmp_path: Path) -> None:
    r = run_qasr(["lab", "matrix", "restart", *inputs, "-n", "5", "--engine", str(double_builds["clean"]),
                  "--engine", f"new={tmp_path / 'nowhere' / 'libchatllm.so'}"], engine_env())
    assert r.returncode == 2 and "libchatllm not found" in r.stderr and "nowhere" in r.stderr
    assert not (tmp_path / "results").exists()  # not even the first engine ran
    r = run_qasr(["lab", "matrix", "restart", *inputs, "--engine", f"a={double_builds['clean']}", "--engine", f"a={double_builds['leaky']}"], engine_env())
    assert r.returncode == 2 and "given twice: a" in r.stderr and not (tmp_path / "results").exists()


def test_labels_and_paths(double_builds: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    assert split_label("upstream-4a4310e=/opt/chatllm/bindings/libchatllm.so") == ("upstream-4a4310e", "/opt/chatllm/bindings/libchatllm.so")
    assert split_label("/opt/a=b/libchatllm.so") == (None, "/opt/a=b/libchatllm.so")
    assert split_label("build/libchatllm.so") == (None, "build/libchatllm.so")
    [unlabelled] = resolve_engines([str(double_builds["clean"])])
    assert unlabelled.label == str(double_builds["clean"]) and len(unlabelled.sha256) == 12
    monkeypatch.setenv("QASR_CHATLLM_LIB", str(double_builds["leaky"]))
    [default] = resolve_engines([])
    assert default.path == double_builds["leaky"].resolve()
    monkeypatch.setenv("QASR_CHATLLM_LIB", "/nowhere/libchatllm.so")
    with pytest.raises(UsageError, match="no --engine given"):
        resolve_engines([])
