"""The lab on the user's own code: ``qasr lab run PATH.py:NAME`` / ``module:NAME``, as a user runs it.

The native cases come from tests/native/leak_cases.c (compiled at test time; not the engine, not the
double): a per-call malloc leak, an mmap leak, a clean call. Leaks are 64 KiB to 1 MiB per call
against thresholds of 16-64 KiB, and the clean cases keep nothing, so the verdicts have margins.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
import soundfile
from conftest import double_env, run_qasr, sine
from modelfiles import write_model

from qasr.errors import UsageError
from qasr.lab.config import RunConfig, validate
from qasr.lab.runner import run

KIB, MIB = 1024, 1024 * 1024

SCENARIOS = '''
import ctypes, os

lib = ctypes.CDLL(os.environ["QASR_LEAK_CASES_LIB"])
for name in ("leak_malloc", "leak_mmap", "clean_call"):
    getattr(lib, name).argtypes = [ctypes.c_size_t]


def malloc_64k():
    lib.leak_malloc(64 * 1024)


def clean():
    lib.clean_call(64 * 1024)


def mmap_1m(i):
    lib.leak_mmap(1 << 20)


class Handler:
    """setup / iteration / teardown, and the lab's context."""

    def __init__(self, lab):
        self.lab = lab

    def setup(self):
        self.buffers = [bytearray(4 << 20)]  # kept for the whole run: not growth
        with open(os.path.join(self.lab.workdir, "setup.txt"), "w") as f:
            f.write(str(self.lab.iterations))

    def iteration(self, i):
        with self.lab.phase("handle"):
            self.buffers.append(bytearray(1 << 20))
        with self.lab.phase("trim"):
            del self.buffers[1:]
        return f"request {i}"

    def teardown(self):
        self.buffers.clear()


_kept = []


def python_list():
    _kept.extend(str(k) * 3 for k in range(4000))


def fails_at_7(i):
    if i == 7:
        raise ValueError(f"handler refused request {i}")
'''


@pytest.fixture()
def user_env(leak_cases_lib: Path, tmp_path: Path) -> dict[str, str]:
    (tmp_path / "scenarios.py").write_text(SCENARIOS)
    env = {k: v for k, v in os.environ.items() if k not in ("QASR_CHATLLM_LIB",) and not k.startswith("QASR_DOUBLE_")}
    env["QASR_LEAK_CASES_LIB"] = str(leak_cases_lib)
    return env


def _lab(env: dict[str, str], tmp_path: Path, target: str, *args: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    r = run_qasr(["lab", "run", target, "--results", str(tmp_path / "results"), "--json", *args], env)
    summary = json.loads(r.stdout) if r.stdout.strip().startswith("{") else {}
    return r.returncode, summary, r.stderr


def test_a_64_kib_malloc_leak_is_a_leak_and_a_clean_function_is_not(user_env: dict[str, str], tmp_path: Path) -> None:
    """The issue's check: no engine anywhere (QASR_CHATLLM_LIB unset), only the user's file."""
    code, leaky, err = _lab(user_env, tmp_path, f"{tmp_path}/scenarios.py:malloc_64k", "--fail-on-leak")
    assert code == 6, err  # LEAK with --fail-on-leak
    assert leaky["verdict"] == "LEAK" and leaky["attribution"]["kind"] == "live-heap leak"
    live = leaky["verdicts"]["heap_live"]
    assert live["verdict"] == "LEAK" and live["slope_bytes_per_iter"] == pytest.approx(64 * KIB, rel=0.05)
    assert live["threshold"] == 16 * KIB  # a user's scenario is judged like restart
    code, clean, err = _lab(user_env, tmp_path, f"{tmp_path}/scenarios.py:clean", "--fail-on-leak")
    assert code == 0, err
    assert clean["verdict"] == "NO_LEAK" and clean["status"] == "completed"
    assert clean["verdicts"]["heap_live"]["ci_high"] < 4 * KIB
    report = (Path(clean["run_dir"]) / "report.md").read_text()
    assert f"# Lab run: `clean` (your code)" in report and f"`{tmp_path}/scenarios.py:clean`" in report
    assert Path(clean["run_dir"]).parent.name == "clean"


def test_an_mmap_leak_is_leaked_mappings(user_env: dict[str, str], tmp_path: Path) -> None:
    code, s, err = _lab(user_env, tmp_path, f"{tmp_path}/scenarios.py:mmap_1m", "-n", "60")
    assert code == 0, err
    assert s["verdict"] == "LEAK" and s["verdicts"]["rss_anon"]["slope_bytes_per_iter"] == pytest.approx(MIB, rel=0.05)
    assert s["verdicts"]["heap_live"]["verdict"] == "NO_LEAK"
    assert s["attribution"]["kind"] == "leaked mappings"


def test_a_class_gets_setup_phases_teardown_and_the_context(user_env: dict[str, str], tmp_path: Path) -> None:
    soundfile.write(str(tmp_path / "clip.wav"), sine(0.5), 16_000)
    code, s, err = _lab(user_env, tmp_path, "scenarios:Handler", "-n", "40", "--audio", str(tmp_path / "clip.wav"),
                        "-r", "request 1")  # fmt: skip
    assert code == 2 and "no module named 'scenarios'" in err  # modules are found from the current directory
    r = run_qasr_in(tmp_path, ["lab", "run", "scenarios:Handler", "-n", "40", "--audio", "clip.wav", "-r", "request 1",
                               "--results", "results", "--json"], user_env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["verdict"] == "NO_LEAK"
    run_dir = tmp_path / s["run_dir"]  # relative to the cwd, as --results was given
    assert (run_dir / "setup.txt").read_text() == "40"  # lab.workdir and lab.iterations
    its = [json.loads(x) for x in (run_dir / "samples.jsonl").read_text().splitlines() if '"kind":"iteration"' in x]
    assert list(its[0]["phases"]) == ["handle", "trim", "end"]
    assert its[0]["phases"]["handle"]["rss_anon"] - its[0]["phases"]["trim"]["rss_anon"] > 512 * KIB  # the phase's buffer
    assert [it["text"] for it in its[:2]] == ["request 1", "request 2"] and its[0]["wer"] == 0.0
    samples = [json.loads(x) for x in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert any(r.get("kind") == "sample" and r.get("phase") == "teardown" for r in samples)
    assert "handle → trim" in (run_dir / "report.md").read_text()


def run_qasr_in(cwd: Path, args: list[str], env: dict[str, str]):  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "qasr", *args], capture_output=True, text=True, env=env, timeout=120,
                          stdin=subprocess.DEVNULL, cwd=cwd)  # fmt: skip


def test_an_exception_in_user_code_is_an_error_run_with_its_traceback_and_data_kept(user_env: dict[str, str], tmp_path: Path) -> None:
    code, s, err = _lab(user_env, tmp_path, f"{tmp_path}/scenarios.py:fails_at_7")
    assert code == 5, err
    assert s["status"] == "error" and s["iterations_completed"] == 6
    assert (s["crash"]["iteration"], s["crash"]["phase"]) == (7, "iteration")
    error = s["crash"]["error"]
    assert error["kind"] == "ValueError" and error["message"] == "handler refused request 7"
    assert error["traceback"].startswith("Traceback") and "scenarios.py\", line" in error["traceback"]
    assert "qasr/lab" not in error["traceback"]  # the lab's own frames are left out
    report = (Path(s["run_dir"]) / "report.md").read_text()
    assert "raise ValueError(f\"handler refused request {i}\")" in report and "6 iterations recorded before it" in report


def test_the_python_heap_names_the_growing_line(user_env: dict[str, str], tmp_path: Path) -> None:
    code, s, err = _lab(user_env, tmp_path, f"{tmp_path}/scenarios.py:python_list", "-n", "60", "--python-heap")
    assert code == 0, err
    py = s["verdicts"]["py_heap"]
    assert py["verdict"] == "LEAK" and py["slope_bytes_per_iter"] > 128 * KIB
    assert s["verdict"] == "LEAK" and s["attribution"]["kind"] == "Python-heap leak"
    top = s["python_sites"]["rows"][0]
    line = SCENARIOS.splitlines().index("    _kept.extend(str(k) * 3 for k in range(4000))") + 1
    assert top["where"] == f"{tmp_path}/scenarios.py:{line}" and top["allocations_per_iter"] == pytest.approx(4000, rel=0.05)
    assert "## Python allocation sites" in (Path(s["run_dir"]) / "report.md").read_text()
    code, plain, err = _lab(user_env, tmp_path, f"{tmp_path}/scenarios.py:clean", "-n", "30")
    assert "py_heap" not in plain["verdicts"]  # opt-in


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("{tmp}/nowhere.py:f", "scenario file not found"),
        ("{tmp}/scenarios.py:nothing", "has no top-level function or class 'nothing' (it defines: Handler, clean,"),
        ("{tmp}/broken.py:f", "cannot read scenario"),
        ("no_such_module_xyz:f", "no module named 'no_such_module_xyz'"),
        ("{tmp}/scenarios.py:1bad", "expected PATH.py:NAME or module:NAME"),
        ("bogus", "unknown scenario 'bogus'"),
    ],
)
def test_a_bad_target_is_a_one_line_usage_error(user_env: dict[str, str], tmp_path: Path, target: str, says: str) -> None:
    (tmp_path / "broken.py").write_text("def f(:\n    pass\n")
    r = run_qasr(["lab", "run", target.format(tmp=tmp_path), "--results", str(tmp_path / "results")], user_env)
    assert r.returncode == 2, r.stderr
    assert says in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "results").exists()  # nothing ran


def test_the_parent_never_runs_the_users_code(tmp_path: Path) -> None:
    (tmp_path / "loud.py").write_text(textwrap.dedent("""
        open(__file__ + ".imported", "a").write("x")
        def f():
            pass
    """))
    cfg = validate(RunConfig(scenario=f"{tmp_path}/loud.py:f", results_dir=str(tmp_path / "r"), iterations=3))
    assert (cfg.scenario, cfg.target) == ("f", f"{tmp_path}/loud.py:f")
    assert not (tmp_path / "loud.py.imported").exists()
    with pytest.raises(UsageError, match="--model: not found"):
        validate(RunConfig(scenario=f"{tmp_path}/loud.py:f", model=str(tmp_path / "none.bin")))


def test_the_allocator_matrix_and_trace_native_run_user_code(user_env: dict[str, str], tmp_path: Path) -> None:
    pytest.importorskip("memray")
    r = run_qasr(["lab", "matrix", f"{tmp_path}/scenarios.py:malloc_64k", "--allocators", "glibc,trim", "-n", "30",
                  "--results", str(tmp_path / "results"), "--json"], user_env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["rows"]
    assert [(row["allocator"], row["verdict"]) for row in rows] == [("glibc", "LEAK"), ("trim", "LEAK")]
    assert rows[0]["engine"] == "(default)"
    code, s, err = _lab(user_env, tmp_path, f"{tmp_path}/scenarios.py:malloc_64k", "-n", "30", "--trace-native",
                        "--trace-iterations", "6")  # fmt: skip
    assert code == 0, err
    # Python's own arenas may show too (one 1 MiB arena more in one of the two runs): find the C site.
    rows = [row for row in s["native_trace"]["stacks"] if row["stack"][0].startswith("leak_malloc (leak_cases.c:")]
    assert len(rows) == 1 and rows[0]["bytes_per_iter"] == pytest.approx(64 * KIB, rel=0.02)


def test_user_code_may_use_qasr_on_the_double(double_lib: Path, tmp_path: Path) -> None:
    """A request handler of the user's own around qasr.Model: the leak in the engine is found through it."""
    (tmp_path / "handler.py").write_text(textwrap.dedent("""
        import qasr

        class Transcriber:
            def __init__(self, lab):
                self.lab = lab

            def setup(self):
                self.model = qasr.Model(self.lab.model)

            def iteration(self, i):
                audio, _ = self.lab.pick(i)
                with self.lab.phase("transcribe"):
                    return qasr.transcribe(self.model, audio).text
    """))
    soundfile.write(str(tmp_path / "clip.wav"), sine(0.5), 16_000)
    model = write_model(tmp_path / "asr.bin")
    common = ["lab", "run", f"{tmp_path}/handler.py:Transcriber", "-m", str(model), "--audio", str(tmp_path / "clip.wav"),
              "-n", "40", "--results", str(tmp_path / "results"), "--json"]  # fmt: skip
    r = run_qasr(common, double_env(double_lib, leak_inference=str(MIB)))
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["verdict"] == "LEAK" and s["verdicts"]["heap_live"]["slope_bytes_per_iter"] == pytest.approx(MIB, rel=0.05)
    assert s["accuracy"]["first_text"] == "hello world from the test double"
    r = run_qasr(common, double_env(double_lib))
    assert r.returncode == 0 and json.loads(r.stdout)["verdict"] == "NO_LEAK", r.stderr
