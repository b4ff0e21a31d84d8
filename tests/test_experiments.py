"""Every experiment folder is complete, and the lab experiments run end to end on the test double."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import soundfile
from conftest import ROOT, double_env, engine_env, run_qasr, sine
from modelfiles import write_aligner, write_model

from qasr.errors import UsageError
from qasr.experiments import Overrides, load_config, find, list_experiments, plan

EXPECTED = ["01-asr-pipeline", "02-restart-vs-reload", "03-model-switch", "04-aligner-leak", "05-asr-aligner-chain", "06-subtitles-zh-tw"]


def test_every_experiment_has_readme_config_and_question() -> None:
    found = [d.name for d in list_experiments()]
    assert found == EXPECTED
    for d in list_experiments():
        cfg = load_config(d / "config.toml")
        assert cfg["name"] == d.name and cfg["question"].strip()
        readme = (d / "README.md").read_text()
        for must in ("Question", "Run it", "docker run", "tiny models"):
            assert must in readme, (d.name, must)
        assert cfg.get("runs") or cfg.get("subtitles"), d.name


def test_experiment_dockerfile_builds_on_the_qasr_image() -> None:
    text = (ROOT / "experiments" / "Dockerfile").read_text()
    assert "FROM ${QASR_IMAGE}" in text and "ARG EXPERIMENT" in text
    top = (ROOT / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE=python:3.11-slim" in top and "USER qasr" in top


def test_find_by_prefix_and_errors() -> None:
    assert find("02").name == "02-restart-vs-reload"
    with pytest.raises(UsageError, match="no experiment 'zz'"):
        find("zz")
    with pytest.raises(UsageError, match="matches several"):
        find("0")


def test_plan_needs_the_models_its_runs_use(tmp_path: Path) -> None:
    exp = tmp_path / "experiments" / "99-switch"
    exp.mkdir(parents=True)
    (exp / "config.toml").write_text('name = "99-switch"\nquestion = "q"\n[inputs]\naudio = ["a.wav"]\n[[runs]]\nscenario = "switch"\n')
    with pytest.raises(UsageError, match="needs a model "):
        plan(exp, Overrides())
    with pytest.raises(UsageError, match="needs a model-b"):
        plan(exp, Overrides(model=str(write_model(tmp_path / "a.bin"))))
    p = plan(exp, Overrides(model=str(tmp_path / "a.bin"), model_b=str(tmp_path / "a.bin"), iterations=3))
    assert p["inputs"]["audio"] == [str(tmp_path / "a.wav")]  # relative to the folder above experiments/
    assert p["inputs"]["iterations"] == 3


@pytest.mark.parametrize("name", ["01", "02", "03", "04"])
def test_lab_experiments_run_on_the_double(name: str, double_lib: Path, tmp_path: Path) -> None:
    audio = tmp_path / "clip.wav"
    soundfile.write(str(audio), sine(0.5), 16_000)
    (tmp_path / "clip.txt").write_text("hello world from the test double")
    args = ["experiment", "run", name, "-n", "6", "-a", str(audio), "--results", str(tmp_path / "results"), "--json",
            "-m", str(write_model(tmp_path / "a.bin")), "--model-b", str(write_model(tmp_path / "b.bin", name="b")),
            "--aligner", str(write_aligner(tmp_path / "al.bin"))]
    r = run_qasr(args, double_env(double_lib))
    assert r.returncode == 0, r.stderr
    done = json.loads(r.stdout)
    assert done["runs"] and all(run["status"] == "completed" and run["iterations"] == 6 for run in done["runs"].values())
    out = Path(done["dir"])
    assert (out / "experiment.md").is_file()
    for run in done["runs"].values():
        assert (Path(run["dir"]) / "report.md").is_file()
    if name in ("02", "03", "04"):
        assert (out / "compare" / "compare.md").is_file()


@pytest.mark.parametrize("name", ["05", "06"])
def test_subtitle_experiments_run_on_the_double(name: str, double_lib: Path, tmp_path: Path) -> None:
    args = ["experiment", "run", name, "--results", str(tmp_path / "results"), "--json",  # the config's own samples
            "-m", str(write_model(tmp_path / "a.bin")), "--aligner", str(write_aligner(tmp_path / "al.bin"))]
    r = run_qasr(args, double_env(double_lib))
    assert r.returncode == 0, r.stderr
    done = json.loads(r.stdout)
    job = done["subtitles"][0]
    assert job["complete"] and job["cues"] >= 1 and Path(job["output"]).stat().st_size > 0
    assert "peak RSS" in (Path(done["dir"]) / "experiment.md").read_text()


def test_every_run_once_per_engine(double_builds: dict[str, Path], tmp_path: Path) -> None:
    audio = tmp_path / "clip.wav"
    soundfile.write(str(audio), sine(0.5), 16_000)
    args = ["experiment", "run", "02", "-n", "4", "-a", str(audio), "--results", str(tmp_path / "results"), "--json",
            "-m", str(write_model(tmp_path / "a.bin")),
            "--engine", f"fixed={double_builds['clean']}", "--engine", f"upstream={double_builds['aborting']}"]
    r = run_qasr(args, engine_env())
    assert r.returncode == 0, r.stderr
    done = json.loads(r.stdout)
    runs = done["runs"]
    assert list(runs) == ["reload@fixed", "restart@fixed", "reload@upstream", "restart@upstream"]
    assert runs["reload@fixed"]["status"] == "completed" and runs["reload@fixed"]["engine"] == "fixed"
    assert runs["reload@upstream"]["status"] == "crashed" and runs["restart@upstream"]["status"] == "completed"
    assert [e["label"] for e in done["engines"]] == ["fixed", "upstream"]
    assert done["engines"][0]["sha256"] != done["engines"][1]["sha256"]
    out = Path(done["dir"])
    for label in ("fixed", "upstream"):  # one comparison per build, of that build's two runs
        assert done["compare"][label]["files"][0] == str(out / f"compare-{label}" / "compare.md")
    md = (out / "experiment.md").read_text()
    assert "| reload@upstream | crashed | 0 | n/a | SIGABRT in iteration 1, phase destroy |" in md
    assert "| reload@fixed | completed | 4 |" in md and f"| upstream | `{double_builds['aborting'].resolve()}` |" in md
    assert f"Comparison (upstream): `{out / 'compare-upstream' / 'compare.md'}`" in md


def test_engines_from_the_config_and_a_missing_one(double_builds: dict[str, Path], tmp_path: Path) -> None:
    exp = tmp_path / "experiments" / "99-engines"
    exp.mkdir(parents=True)
    (tmp_path / "builds").mkdir()
    shutil.copy2(double_builds["leaky"], tmp_path / "builds" / "libchatllm.so")
    soundfile.write(str(tmp_path / "a.wav"), sine(0.5), 16_000)
    (exp / "config.toml").write_text(
        'name = "99-engines"\nquestion = "q"\n'
        f'engines = ["clean={double_builds["clean"]}", "leaky=builds"]\n'  # relative: from the folder above experiments/
        '[inputs]\naudio = ["a.wav"]\niterations = 3\n[[runs]]\nscenario = "restart"\n'
    )  # fmt: skip
    model = str(write_model(tmp_path / "m.bin"))
    done = json.loads(run_qasr(["experiment", "run", str(exp), "-m", model, "--results", str(tmp_path / "r"), "--json"], engine_env()).stdout)
    assert list(done["runs"]) == ["restart@clean", "restart@leaky"]
    assert done["engines"][1]["path"] == str((tmp_path / "builds" / "libchatllm.so").resolve())
    # --engine replaces the config's list; a missing build stops everything before the first run
    r = run_qasr(["experiment", "run", str(exp), "-m", model, "--results", str(tmp_path / "r2"),
                  "--engine", str(double_builds["clean"]), "--engine", str(tmp_path / "gone.so")], engine_env())
    assert r.returncode == 2 and "libchatllm not found" in r.stderr and not (tmp_path / "r2").exists()


def test_synthetic_runs_every_model_on_its_stand_in(double_lib: Path, tmp_path: Path) -> None:
    from qasr.engine.synth import TINY_ASR
    from qasr.engine.synth import write_model as write_synthetic

    models = tmp_path / "models"
    models.mkdir()
    # A first run writes the full-size stand-in (seconds, ~0.5 GB); a small one from the same writer here.
    stand_in = write_synthetic(TINY_ASR, models / "qwen3-asr-0.6b-q4_0.synthetic.bin", seed=3).path
    audio = tmp_path / "clip.wav"
    soundfile.write(str(audio), sine(0.5), 16_000)
    env = {**double_env(double_lib), "QASR_MODELS_DIR": str(models)}
    common = ["experiment", "run", "02", "-n", "4", "-a", str(audio), "--json", "--synthetic"]
    r = run_qasr([*common, "--results", str(tmp_path / "r")], env)
    assert r.returncode == 0, r.stderr
    done = json.loads(r.stdout)
    assert done["synthetic"] is True and done["max_tokens"] == 16
    for run in done["runs"].values():
        summary = json.loads((Path(run["dir"]) / "summary.json").read_text())
        assert summary["config"]["max_tokens"] == 16
        assert [m["path"] for m in summary["models"]] == [str(stand_in)] and summary["models"][0]["synthetic"]
        assert "**SYNTHETIC model" in (Path(run["dir"]) / "report.md").read_text()
    assert "**Ran on SYNTHETIC models**" in (Path(done["dir"]) / "experiment.md").read_text()
    # --max-tokens sets the cap; a real model given by path is refused before anything runs
    r = run_qasr([*common, "--max-tokens", "5", "--results", str(tmp_path / "r2")], env)
    assert json.loads(r.stdout)["max_tokens"] == 5
    r = run_qasr([*common, "-m", str(write_model(tmp_path / "real.bin")), "--results", str(tmp_path / "r3")], env)
    assert r.returncode == 2 and "is a real model" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "r3").exists()
