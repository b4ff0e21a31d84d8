"""qasr batch --cluster local: Ray started inside the command (no ray start), on the test double.

Good files, a corrupt one and a poison input (the double aborts on its exact duration, in every
process): the good ones are done once, the others failed with their reasons, exit 1; a rerun starts
no Ray and does no work; --max-requests replaces the actor and loses nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile
from conftest import double_env, run_qasr, sine

pytest.importorskip("ray.data", reason="qasr batch needs ray[data] (pip install 'qasr[cluster]')")

POISON_MS = 7770


def make_inputs(root: Path) -> list[str]:
    """Three tones, a corrupt file and the poison; the ids of the good ones."""
    good = []
    for i, (seconds, freq) in enumerate([(1.5, 300.0), (2.0, 500.0), (2.5, 700.0)]):
        soundfile.write(str(root / f"good{i}.wav"), sine(seconds, freq=freq), 16_000)
        good.append(f"good{i}.wav")
    (root / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEgarbage")
    soundfile.write(str(root / "poison.wav"), sine(POISON_MS / 1000), 16_000)
    return good


def batch(args: list[str], env: dict[str, str]) -> tuple[int, dict[str, object], str]:
    done = run_qasr(["batch", *args, "--json"], env=env, timeout=400)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"stdout must be the summary alone: {done.stdout!r} / {done.stderr[-2000:]}"
    return done.returncode, json.loads(lines[0]), done.stderr


def manifest(out: Path) -> dict[str, dict[str, object]]:
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len({r["id"] for r in rows}) == len(rows)  # compacted: one row per input
    return {r["id"]: r for r in rows}


def test_local_batch_faults_resume_and_replacement(double_lib: Path, asr_model_file: Path, tmp_path: Path) -> None:
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    good = make_inputs(inputs)
    env = double_env(double_lib, abort_at_ms=str(POISON_MS), words="audio")
    common = [str(inputs), "-o", str(out), "-m", str(asr_model_file), "--cluster", "local", "-f", "json,txt,srt"]

    code, summary, stderr = batch([*common, "--actors", "2", "--threads", "1", "--retries", "1"], env)
    assert code == 1, stderr[-3000:]
    assert (summary["done"], summary["failed"], summary["actors"], summary["threads"]) == (3, 2, 2, 1)
    rows = manifest(out)
    for name in good:
        r = rows[name]
        stem = Path(name).stem
        assert r["status"] == "done" and sorted(r["outputs"]) == sorted(f"{stem}.{f}" for f in ("json", "txt", "srt"))
        result = json.loads((out / f"{stem}.json").read_text())
        assert result["source"].endswith(name) and r["audio_seconds"] == result["audio_seconds"]
        assert (out / f"{stem}.txt").read_text() == result["text"] + "\n" and result["text"].startswith("w")
    assert rows["corrupt.wav"]["status"] == "failed" and "cannot decode audio" in rows["corrupt.wav"]["error"]
    assert rows["poison.wav"]["status"] == "failed" and rows["poison.wav"]["signal"] == "SIGABRT (signal 6)"
    assert "died on this input 2 times" in rows["poison.wav"]["error"]
    assert not list((out / ".qasr-batch" / "pieces").iterdir()) and not list((out / ".qasr-batch" / "runs").iterdir())
    assert (out / "manifest.parquet").stat().st_size > 0
    assert "Traceback" not in stderr

    before = {p: p.stat().st_mtime_ns for p in out.glob("good*.*")}
    code, summary, _ = batch(common, env)  # the rerun: nothing to do, no Ray started
    assert code == 1 and (summary["done"], summary["skipped"], summary["failed"], summary["actors"]) == (0, 3, 2, 0)
    assert {p: p.stat().st_mtime_ns for p in out.glob("good*.*")} == before
    assert all("kept from an earlier run" in f["error"] for f in summary["failures"])

    only_good = [str(inputs / name) for name in good]
    code, summary, stderr = batch([*only_good, "-o", str(out), "-m", str(asr_model_file), "-f", "json,txt,srt", "--force",
                                   "--actors", "1", "--threads", "1", "--max-requests", "1"], env)  # fmt: skip
    assert code == 0, stderr[-3000:]
    assert summary["done"] == 3 and summary["actor_processes"] == 3  # each actor served one piece, then was replaced
