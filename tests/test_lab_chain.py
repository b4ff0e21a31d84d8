"""The ASR → aligner chain as a lab series (the study's experiment 5): `chain` (a process per step)
and `chain-restart` (both models loaded once), on the test double with faults injected into the
aligner step only, where the right answer is known; and 20 iterations on the real engine."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import soundfile
from conftest import SHARED_DATA, SHARED_MODELS, real_engine, requires_real_engine, sine
from modelfiles import write_aligner, write_model

from qasr.errors import ModelFileError, UsageError
from qasr.lab.config import RunConfig, validate
from qasr.lab.runner import run
from qasr.lab.stepgrowth import growth_by_step, step_ends

MIB = 1024 * 1024
TEXT = "hello world from the test double"


@pytest.fixture()
def chain(double_lib: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Run a chain scenario on the double with knobs; returns the RunOutcome."""
    audio = tmp_path / "clip.wav"
    soundfile.write(str(audio), sine(0.5), 16_000)
    (tmp_path / "clip.txt").write_text(TEXT)
    model, aligner = write_model(tmp_path / "asr.bin"), write_aligner(tmp_path / "aligner.bin")

    def go(scenario: str, n: int, **knobs: object):  # type: ignore[no-untyped-def]
        for key in [k for k in os.environ if k.startswith("QASR_DOUBLE_")]:
            monkeypatch.delenv(key)
        for key, value in knobs.items():
            monkeypatch.setenv(f"QASR_DOUBLE_{key.upper()}", str(value))
        cfg = validate(RunConfig(scenario=scenario, model=str(model), aligner=str(aligner), audio=[str(audio)], iterations=n,
                                 engine=str(double_lib), results_dir=str(tmp_path / "results"), peaks=False))  # fmt: skip
        return run(cfg, show_progress=False)

    return go


def test_chain_restart_finds_a_leak_in_the_aligner_step_and_names_that_step(chain) -> None:  # type: ignore[no-untyped-def]
    s = chain("chain-restart", 100, leak_align=MIB).summary
    assert s["status"] == "completed" and s["verdict"] == "LEAK"
    assert s["verdicts"]["heap_live"]["slope_bytes_per_iter"] == pytest.approx(MIB, rel=0.05)
    assert s["attribution"]["kind"] == "live-heap leak"
    by_step = s["growth_by_step"]
    assert by_step["leaking"] == ["align"]
    assert by_step["steps"]["align"]["heap_live"]["slope_bytes_per_iter"] == pytest.approx(MIB, rel=0.05)
    # The knob leaks in aligner turns only. The ASR step's running sum is flat but not always
    # decided: one CI run fitted a warm-up to a one-off step in it and said INCONCLUSIVE (tau > N/5),
    # and under load its slope reached 22 KiB/iter (T is 16 KiB): never a leak, and a small fraction
    # of the aligner step's 1 MiB.
    asr = by_step["steps"]["asr"]["heap_live"]
    assert asr["verdict"] != "LEAK" and abs(asr["slope_bytes_per_iter"]) < 0.05 * MIB, asr["reason"]
    assert "step align" in by_step["explanation"]


def test_chain_restart_without_a_fault_is_no_leak(chain) -> None:  # type: ignore[no-untyped-def]
    out = chain("chain-restart", 100)
    s = out.summary
    assert s["status"] == "completed" and s["verdict"] == "NO_LEAK"
    assert s["growth_by_step"]["leaking"] == []
    assert s["accuracy"]["wer"]["median"] == 0.0  # scored on the ASR text
    # the aligner aligned the ASR step's transcript, not the reference
    assert s["timing"]["align_ms"]["n"] == 100
    assert "## Growth by step" in (out.run_dir / "report.md").read_text()


def test_chain_leak_in_the_aligner_process_is_named_and_dies_with_it(chain) -> None:  # type: ignore[no-untyped-def]
    out = chain("chain", 60, leak_align=8 * MIB)  # 60: at 30 a step verdict came out INCONCLUSIVE in one fresh-clone run
    s = out.summary
    assert s["status"] == "completed", s.get("crash")
    # Each step's process ends after its turn: nothing accumulates across iterations...
    assert s["verdict"] == "NO_LEAK"
    steps = s["step_processes"]
    assert set(steps) == {"asr", "align"}
    for entry in steps.values():
        assert entry["verdicts"]["peak_rss"]["verdict"] == "NO_LEAK"
    # ...but the aligner's process holds the leaked bytes after its turn, and the ASR's does not.
    assert steps["align"]["turn_residue_median"] >= 8 * MIB
    assert steps["asr"]["turn_residue_median"] < 4 * MIB
    assert s["step_residue"].startswith("the align step")
    assert steps["align"]["peak_rss_median"] - steps["asr"]["peak_rss_median"] > 4 * MIB
    report = (out.run_dir / "report.md").read_text()
    assert "## Step processes" in report and "Residue: the align step" in report


def test_chain_without_a_fault_is_no_leak_with_both_steps_recorded(chain) -> None:  # type: ignore[no-untyped-def]
    out = chain("chain", 60)
    s = out.summary
    assert s["status"] == "completed" and s["verdict"] == "NO_LEAK"
    assert s["accuracy"]["first_text"] == TEXT and s["accuracy"]["same_as_first"] == 1.0
    assert s["timing"]["align_ms"]["n"] == 60 and s["timing"]["ttft_ms"]["n"] == 60
    for entry in s["step_processes"].values():
        assert entry["peak_rss_median"] > 0 and entry["load_ms_median"] is not None
        assert entry["verdicts"]["rss_anon_done"]["verdict"] == "NO_LEAK"
    assert s["step_processes"]["align"]["threshold"] == MIB  # model-cycle T: each step process loads a model


def test_chain_abort_in_the_aligner_keeps_the_asr_step(chain) -> None:  # type: ignore[no-untyped-def]
    out = chain("chain", 3, abort_at_align=1)  # every aligner process dies at its first turn
    s = out.summary
    assert s["status"] == "crashed" and s["iterations_completed"] == 0
    assert s["crash"]["signal_name"] == "SIGABRT"
    assert (s["crash"]["iteration"], s["crash"]["phase"]) == (1, "align")
    assert any("injected abort at aligner turn 1" in line for line in s["crash"]["stderr_tail"])
    partial = s["partial_iteration"]
    assert set(partial["phases"]) == {"done:asr"}
    assert partial["steps"]["asr"]["peak_rss"] > 0 and partial["steps"]["asr"]["record"]["tokens"]
    assert partial["turns"][0]["text"] == TEXT
    assert "SIGABRT" in (out.run_dir / "report.md").read_text()


def test_chain_restart_abort_in_the_aligner_keeps_the_asr_phases(chain) -> None:  # type: ignore[no-untyped-def]
    s = chain("chain-restart", 10, abort_at_align=3).summary
    assert s["status"] == "crashed" and s["iterations_completed"] == 2
    assert (s["crash"]["iteration"], s["crash"]["phase"]) == (3, "infer:align")
    assert set(s["partial_iteration"]["phases"]) == {"inferred:asr", "restarted:asr"}
    assert s["partial_iteration"]["turns"][0]["text"] == TEXT


def test_chain_needs_an_asr_model_and_an_aligner(tmp_path: Path) -> None:
    audio = tmp_path / "clip.wav"
    soundfile.write(str(audio), sine(0.5), 16_000)
    model, aligner = write_model(tmp_path / "asr.bin"), write_aligner(tmp_path / "aligner.bin")
    with pytest.raises(UsageError, match="--aligner"):
        validate(RunConfig(scenario="chain", model=str(model), audio=[str(audio)]))
    with pytest.raises(ModelFileError, match="is a Qwen3-ForcedAligner model, but a Qwen3-ASR model is needed"):  # the wrong way round
        validate(RunConfig(scenario="chain-restart", model=str(aligner), aligner=str(model), audio=[str(audio)]))
    cfg = validate(RunConfig(scenario="chain", model=str(model), aligner=str(aligner), audio=[str(audio)]))
    assert cfg.model_paths() == [str(model), str(aligner)]
    assert cfg.references == [None]  # the chain aligns its own transcript: no reference needed


def _iteration(during_a: float, a: float, b: float) -> dict[str, object]:
    return {"phases": {"inferred:A": {"heap_live": during_a}, "done:A": {"heap_live": a}, "done:B": {"heap_live": b}}}


def test_growth_by_step_puts_the_growth_where_it_happens() -> None:
    # Step A uses a 4 MiB buffer and frees it before it ends: no growth; step B keeps 1 MiB more each time.
    its = [_iteration(100 * MIB + i * MIB + 4 * MIB, 100 * MIB + i * MIB, 100 * MIB + (i + 1) * MIB) for i in range(100)]
    assert step_ends(list(its[0]["phases"])) == {"A": "done:A", "B": "done:B"}  # type: ignore[arg-type]
    found = growth_by_step(its, {"heap_live": 16 * 1024})
    assert found is not None and found["leaking"] == ["B"]
    assert found["steps"]["B"]["heap_live"]["slope_bytes_per_iter"] == pytest.approx(MIB, rel=1e-6)
    assert abs(found["steps"]["A"]["heap_live"]["slope_bytes_per_iter"]) < 1024
    assert growth_by_step([{"phases": {"inferred": {}, "restarted": {}}}] * 5, {"heap_live": 1}) is None


def test_memory_handed_from_one_step_to_the_next_is_said_so() -> None:
    # A allocates 4 MiB and keeps it past its end; B frees 3 MiB of it: the net growth is 1 MiB per iteration.
    its = [_iteration(0, 100 * MIB + i * MIB + 4 * MIB, 100 * MIB + (i + 1) * MIB) for i in range(100)]
    found = growth_by_step(its, {"heap_live": 16 * 1024})
    assert found is not None and found["leaking"] == ["A"]
    assert "step B gives back" in found["explanation"]


def _real_chain(scenario: str, tmp_path: Path, n: int) -> dict[str, object]:
    asr, aligner = SHARED_MODELS / "tiny-asr-a-q4_0.bin", SHARED_MODELS / "tiny-aligner-q4_0.bin"
    if not (asr.is_file() and aligner.is_file()):
        pytest.skip("tiny models not found")
    lib, _ = real_engine()  # type: ignore[misc]
    cfg = validate(RunConfig(scenario=scenario, model=str(asr), aligner=str(aligner), audio=[str(SHARED_DATA / "jfk.wav")],
                             iterations=n, engine=str(lib), results_dir=str(tmp_path / "results"), peaks=False))  # fmt: skip
    return run(cfg, show_progress=False).summary


@pytest.mark.real_engine
@requires_real_engine
def test_twenty_chain_iterations_on_the_real_engine(tmp_path: Path) -> None:
    s = _real_chain("chain", tmp_path, 20)
    assert s["status"] == "completed", s.get("crash")
    assert s["iterations_completed"] == 20
    assert s["accuracy"]["first_text"] and s["timing"]["align_ms"]["n"] == 20
    assert s["verdicts"]["rss_anon"]["n_total"] == 20  # a verdict on the whole series
    assert all(e["peak_rss_median"] > 10 * MIB for e in s["step_processes"].values())  # each step loaded a model


@pytest.mark.real_engine
@requires_real_engine
def test_two_models_share_the_lab_process_on_the_real_engine(tmp_path: Path) -> None:
    # Upstream 4a4310e prints the ASR model's text through the aligner's callback once the aligner is
    # loaded; qasr routes it by the running turn (qasr.engine.switchboard), so chain-restart runs.
    s = _real_chain("chain-restart", tmp_path, 3)
    assert s["status"] == "completed", s.get("crash")
    assert s["iterations_completed"] == 3
    assert s["accuracy"]["first_text"] == "nev jaello nu"  # tiny-asr-a's planted chain, heard every iteration
    assert s["timing"]["align_ms"]["n"] == 3  # the aligner had text to align each time


def test_chain_restart_under_upstreams_callback_mix_up(chain) -> None:  # type: ignore[no-untyped-def]
    """The double as upstream: every model's chunks reach the callback of the model started last."""
    s = chain("chain-restart", 10, last_started_prints=1).summary
    assert s["status"] == "completed", s.get("crash")
    assert s["accuracy"]["wer"]["median"] == 0.0 and s["timing"]["align_ms"]["n"] == 10


def test_switch_restart_keeps_both_models_and_alternates(double_lib: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("QASR_DOUBLE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("QASR_DOUBLE_LAST_STARTED_PRINTS", "1")  # as upstream
    audio = tmp_path / "clip.wav"
    soundfile.write(str(audio), sine(0.5), 16_000)
    (tmp_path / "clip.txt").write_text(TEXT)
    a, b = write_model(tmp_path / "a.bin"), write_model(tmp_path / "b.bin")
    cfg = validate(RunConfig(scenario="switch-restart", model=str(a), model_b=str(b), audio=[str(audio)], iterations=10,
                             engine=str(double_lib), results_dir=str(tmp_path / "results"), peaks=False))  # fmt: skip
    out = run(cfg, show_progress=False)
    s = out.summary
    assert s["status"] == "completed", s.get("crash")
    assert s["accuracy"]["wer"]["median"] == 0.0  # model A heard every iteration although B was started last
    records = [json.loads(line) for line in (out.run_dir / "samples.jsonl").read_text().splitlines()]
    its = [r for r in records if r["kind"] == "iteration"]
    assert len(its) == 10
    assert all(list(r["phases"]) == ["inferred:A", "restarted:A", "inferred:B", "restarted:B"] for r in its)
    assert {r["extra"]["text_b"] for r in its} == {TEXT}  # and model B every iteration


@pytest.mark.real_engine
@requires_real_engine
def test_switch_restart_stops_in_setup_on_the_real_engine(tmp_path: Path) -> None:
    # Upstream 4a4310e: two Qwen3-ASR objects share one prompt encoder, so the model loaded first would
    # transcribe without its audio; qasr refuses to load B, and the run says why. When upstream fixes
    # it (tests/test_two_models_upstream.py tells), this run completes and docs/study.md must change.
    a, b = SHARED_MODELS / "tiny-asr-a-q4_0.bin", SHARED_MODELS / "tiny-asr-b-q4_0.bin"
    if not b.is_file():
        pytest.skip("tiny models not found")
    lib, _ = real_engine()  # type: ignore[misc]
    cfg = validate(RunConfig(scenario="switch-restart", model=str(a), model_b=str(b), audio=[str(SHARED_DATA / "jfk.wav")],
                             iterations=3, engine=str(lib), results_dir=str(tmp_path / "results"), peaks=False))  # fmt: skip
    s = run(cfg, show_progress=False).summary
    assert s["status"] == "error" and s["iterations_completed"] == 0
    assert "cannot hold two Qwen3-ASR models in one process" in s["crash"]["error"]["message"]
    assert s["crash"]["phase"] == "load:setup:B"
