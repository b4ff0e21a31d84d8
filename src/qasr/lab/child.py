"""The lab's child process: ``python -m qasr.lab.child RUN_DIR``. One scenario, one process.

It reads ``RUN_DIR/config.json`` and sends its records as `qasr.channel` messages to the channel's
durable copy, ``RUN_DIR/samples.jsonl`` (one JSON line per record, ``kind`` naming it, flushed as it
goes; files written before the channel name it ``type``, and `qasr.lab.analysis` reads both), so
whatever happens to the process (a native abort in ``chatllm_destroy``, a signal, Ctrl-C)
the parent still has every finished iteration and the phase that was running:

* ``meta``: engine, models, allocator, whether heap statistics mean anything;
* ``enter``: a phase is about to start (written before each engine call);
* ``iteration``: memory at every phase boundary, timing, text and accuracy;
* ``trim``: memory before and after ``malloc_trim(0)`` at the end;
* ``python_sites``: with ``--python-heap``, the source lines whose Python memory grew;
* ``error`` (a Python-level failure as the channel's error record, with the Python class and the
  traceback of the user's code) and ``end``.

Its stdout is the channel too: one ``progress`` message per finished iteration, for the parent's bar.

It runs one of our scenarios (`qasr.lab.scenarios`), a user's function or class
(`qasr.lab.userscenario`, loaded by `qasr.lab.usercode`), or one pytest test's body
(`qasr.lab.pytest_child`), all through `Session.drive`.

The process ends with `qasr.channel.exit_now` (``os._exit``): upstream aborts in static destructors otherwise.
"""

from __future__ import annotations

import gc
import os
import sys
import time
import traceback
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from qasr.channel import Sender, exit_now
from qasr.lab.config import RunConfig

if TYPE_CHECKING:
    from qasr.lab.engineproc import EngineTarget
    from qasr.lab.memory import PeakSampler
    from qasr.lab.scenarios import Inputs, Scenario

#: Frames from files under here are the lab's own, not the user's (trimmed from tracebacks).
_LAB_DIR = str(Path(__file__).resolve().parent)


class Probe:
    """Phase markers and memory samples for one iteration at a time."""

    def __init__(self, recorder: Sender, heap_ok: bool, trim_each: bool, jemalloc: bool = False) -> None:
        self.recorder = recorder
        self.heap_ok = heap_ok
        self.jemalloc = jemalloc
        self.trim_each = trim_each
        self.iteration = 0
        self.phases: dict[str, dict[str, Any]] = {}
        #: With an engine process (`watch`): the lab's own process at the same phases, a second series.
        self.lab_phases: dict[str, dict[str, Any]] = {}
        self.steps: dict[str, dict[str, Any]] = {}
        self.overhead = 0.0
        self.engine: EngineTarget | None = None

    def begin(self, i: int) -> None:
        self.iteration = i
        self.phases = {}
        self.lab_phases = {}
        self.steps = {}
        self.overhead = 0.0

    def watch(self, provider: Any) -> None:
        """Sample ``provider``'s engine process from now on (`qasr.lab.engineproc`), when it has one."""
        from qasr.lab.engineproc import EngineTarget, has_engine_process

        if has_engine_process(provider):
            self.engine = EngineTarget(provider)

    def engine_pid(self) -> int | None:
        return self.engine.pid if self.engine is not None else None

    def enter(self, phase: str) -> None:
        t0 = time.perf_counter()
        self.recorder.send("enter", i=self.iteration, phase=phase)
        self.overhead += time.perf_counter() - t0

    def sample(self, phase: str, *, full: bool = False) -> None:
        from qasr.lab.memory import malloc_trim, take_sample

        t0 = time.perf_counter()
        if full and self.trim_each:
            malloc_trim(0)
        record = take_sample(phase, collect=full, smaps=full).to_dict()
        if not self.heap_ok:  # under jemalloc, glibc's mallinfo2 describes an arena nobody uses
            for key in ("heap_live", "heap_free", "heap_mmap"):
                record[key] = None
        line: dict[str, Any] = {"i": self.iteration, "phase": phase, "mem": record}
        if self.engine is None:
            self.phases[phase] = record
        else:  # the engine's process is the series; the lab's own is the second one
            self.lab_phases[phase] = record
            engine = self.engine.sample(phase, full=full, trim=full and self.trim_each, heap_ok=not self.jemalloc)
            if engine is not None:  # a closed engine's process is gone: no engine sample at this phase
                self.phases[phase] = engine
            line.update(mem=engine, lab_mem=record)
        # Also on disk at once: if the next engine call aborts, this iteration's phases survive.
        self.recorder.send("sample", **line)
        self.overhead += time.perf_counter() - t0

    def step(self, name: str, figures: dict[str, Any]) -> None:
        """What a step's own process measured (the `chain` scenario), on disk before the next step starts."""
        self.steps[name] = figures
        self.recorder.send("step", i=self.iteration, step=name, figures=figures)

    def turn(self, text: str, seconds: float) -> None:
        """The output of an engine turn, kept even if the iteration never finishes."""
        self.recorder.send("turn", i=self.iteration, text=text, seconds=round(seconds, 5))


def _engine_meta() -> dict[str, Any]:
    from qasr.engine.library import loaded_engine

    engine = loaded_engine()
    if engine is None:
        return {}
    return {"path": str(engine.path), "ggml_dir": str(engine.ggml_dir), "is_test_double": engine.is_test_double}


def _iterate(cfg: RunConfig, scenario: Scenario, inputs: Inputs, session: Session, peaks: PeakSampler | None) -> None:
    """The N iterations: run, score, record each one, and tell the parent how far we are."""
    from qasr.lab.accuracy import error_rates
    from qasr.lab.pyheap import PythonSites
    from qasr.text.post import postprocess

    probe, recorder, progress = session.probe, session.recorder, session.progress
    sites = PythonSites(cfg.iterations) if cfg.python_heap else None
    first_text: str | None = None
    for i in range(1, cfg.iterations + 1):
        probe.begin(i)
        if peaks is not None:
            peaks.reset()
        t0 = time.perf_counter()
        outcome = scenario.iteration(i)
        wall = time.perf_counter() - t0
        _, reference = inputs.pick(i) if inputs.audio else (None, None)
        if first_text is None:
            first_text = outcome.text
        final_text = outcome.text
        if cfg.postprocess and not cfg.spec.uses_aligner:
            # Score after the same chain on both sides: digits or script changes are not errors.
            final_text = postprocess(outcome.text, **cfg.postprocess, language=cfg.language)
            reference = postprocess(reference, **cfg.postprocess, language=cfg.language) if reference else reference
        wer, cer = (None, None) if cfg.spec.uses_aligner else error_rates(final_text, reference)
        recorder.send(
            "iteration",
            **{
                "i": i,
                "wall_seconds": round(wall, 5),
                "lab_overhead_seconds": round(probe.overhead, 6),
                "load_seconds": outcome.load_seconds,
                "ttft_seconds": outcome.ttft_seconds,
                "tokens": outcome.tokens,
                "tokens_per_second": outcome.tokens_per_second,
                "rtf": outcome.rtf,
                "text": outcome.text,
                "final_text": final_text,
                "wer": wer,
                "cer": cer,
                "same_as_first": outcome.text == first_text,
                "peak_rss": peaks.peak() if peaks is not None else None,
                "phases": probe.phases,
                **({"lab_phases": probe.lab_phases} if probe.lab_phases else {}),
                "steps": probe.steps or None,
                "extra": outcome.extra,
            }
        )
        if sites is not None:
            sites.after_iteration(i)
        progress.send("progress", done=i)
    growth = sites.growth(cfg.iterations) if sites is not None else None
    if growth is not None:
        recorder.send("python_sites", **growth)


def _lab_frames_first(tb: TracebackType | None) -> TracebackType | None:
    """Skip the lab's own frames at the top of a traceback: the user's code starts where they end."""
    first = tb
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_LAB_DIR):
        tb = tb.tb_next
    return tb or first


class Session:
    """One child run: its config, where records go, and how each kind of scenario is driven."""

    def __init__(self, run_dir: Path, progress: Sender) -> None:
        from qasr.lab.memory import heap_stats_available

        self.run_dir = run_dir
        self.cfg = RunConfig.from_json((run_dir / "config.json").read_text(encoding="utf-8"))
        self.jemalloc = "jemalloc" in os.environ.get("LD_PRELOAD", "")
        heap_ok, self.heap_why = heap_stats_available()
        self.heap_ok = heap_ok and not self.jemalloc
        # The records go to the channel's durable copy only: each line flushed as it is sent, so a crash
        # keeps everything before it; the parent reads the file when the child has ended.
        self.recorder = Sender(None, durable=run_dir / "samples.jsonl")
        self.probe = Probe(self.recorder, self.heap_ok, trim_each=self.cfg.allocator == "trim", jemalloc=self.jemalloc)
        self.progress = progress

    def inputs(self) -> Inputs:
        from qasr.audio import load_audio
        from qasr.lab.scenarios import Inputs

        cfg = self.cfg
        return Inputs(audio=[load_audio(a) for a in cfg.audio], references=list(cfg.references), language=cfg.language,
                      threads=cfg.threads, max_length=cfg.max_length, engine=cfg.engine, context=cfg.context,
                      max_tokens=cfg.max_tokens, workdir=str(self.run_dir.resolve()))  # fmt: skip

    def builtin(self) -> int:
        """One of our scenarios: the models inspected and the engine loaded before the baseline."""
        from qasr.engine.library import load_library
        from qasr.engine.modelfile import inspect_model_file
        from qasr.lab.scenarios import SCENARIO_CLASSES

        inputs = self.inputs()
        models = self.cfg.model_paths()
        files = [inspect_model_file(m).to_dict() for m in models]
        load_library(self.cfg.engine)  # before the baseline sample, so loading the .so is not counted as growth
        return self.drive(SCENARIO_CLASSES[self.cfg.scenario](self.probe, inputs, models), inputs, {"models": files})

    def user(self, target: Any, inputs: Inputs | None = None) -> int:
        """A user's function or class (or a test body) under the lab: no model of ours is loaded."""
        from qasr.lab.userscenario import LabContext, UserScenario, model_files, threshold_kind

        inputs = inputs or self.inputs()
        if self.cfg.provider == "qwen3-chatllm":
            from qasr.engine.library import load_library

            load_library(self.cfg.engine)  # before the baseline, as for our own scenarios
        scenario = UserScenario(self.probe, inputs, target, LabContext(self.cfg, inputs, self.probe))
        meta = {"models": model_files(self.cfg), "target": self.cfg.target, "threshold_kind": threshold_kind(target),
                "provider": self.cfg.provider, "engine_final_phase": getattr(target, "engine_final_phase", None)}  # fmt: skip
        return self.drive(scenario, inputs, meta)

    def drive(self, scenario: Scenario, inputs: Inputs, meta: dict[str, Any]) -> int:
        """Baseline, setup, the iterations, teardown, the final samples; every failure recorded. The exit code."""
        from qasr.lab.memory import malloc_trim, take_sample
        from qasr.lab.native_trace import tracking

        cfg, recorder, probe = self.cfg, self.recorder, self.probe
        try:
            if cfg.python_heap:
                from qasr.lab.pyheap import start

                start()
            baseline = take_sample("baseline").to_dict()
            recorder.send(
                "meta",
                **{
                    "pid": os.getpid(),
                    "scenario": cfg.scenario,
                    "iterations": cfg.iterations,
                    "allocator": cfg.allocator,
                    "env": {k: os.environ[k] for k in ("LD_PRELOAD", "MALLOC_ARENA_MAX") if k in os.environ},
                    "heap_stats": self.heap_ok,
                    "heap_stats_note": "jemalloc preloaded: mallinfo2 is not its heap" if self.jemalloc else self.heap_why,
                    "engine": _engine_meta(),
                    "audio": [{"path": a.source, "seconds": round(a.seconds, 3)} for a in inputs.audio],
                    "final_phase": scenario.final_phase,
                    "context": cfg.context,
                    "python_heap": cfg.python_heap,
                    "baseline": baseline,
                    "python": sys.version.split()[0],
                    "started": time.time(),
                    **meta,
                }
            )
            probe.begin(0)
            scenario.setup()
            recorder.send("setup", phases=probe.phases)
            # Everything alive now (modules, decoded audio, a kept model) lives for the whole run: move it
            # out of the collector's sight so each iteration's gc.collect() scans only what the iteration
            # made (measured: 5.2 ms -> well under 1 ms per collection with the tiny models).
            gc.collect()
            gc.freeze()
            peaks = self.peaks() if cfg.peaks else None
            # The capture ends when the iterations do (or fail), while everything the scenario keeps is alive.
            with tracking(Path(cfg.trace_file) if cfg.trace_file else None):
                _iterate(cfg, scenario, inputs, self, peaks)
            if peaks is not None:
                peaks.stop()
            probe.begin(cfg.iterations + 1)
            engine_trim = probe.engine.trim() if probe.engine is not None else None
            if engine_trim is not None:  # before teardown closes it: malloc_trim in the engine's process
                recorder.send("trim", process="engine", **engine_trim)
            scenario.teardown()
            before = take_sample("final").to_dict()
            released = malloc_trim(0)
            after = take_sample("after_trim").to_dict()
            recorder.send("trim", process="lab", before=before, after=after, released=released)
            recorder.send("end", finished=time.time())
            return 0
        except KeyboardInterrupt:
            recorder.send("interrupted", i=probe.iteration)
            return 130
        except Exception as exc:  # noqa: BLE001 - recorded for the report, then a non-zero exit
            return self.error(exc)

    def peaks(self) -> PeakSampler:
        """The background peak sampler: of the engine's process once the scenario watches one (its
        setup made it, or from the iteration that does), else of this process."""
        from qasr.lab.engineproc import EnginePeaks
        from qasr.lab.memory import PeakSampler

        if self.probe.engine is not None or self.cfg.provider:
            # With a provider, an engine process may appear in any iteration (reload): follow it then.
            return EnginePeaks(lambda: self.probe.engine_pid() if self.probe.engine is not None else "self").start()
        return PeakSampler().start()

    def error(self, exc: BaseException, *, traceback_text: str | None = None) -> int:
        """Record a Python-level failure (with its traceback when it is not one of our clear errors,
        or when it came from the user's code) and return the exit code it carries."""
        from qasr.errors import QasrError, to_record

        expected = isinstance(exc, QasrError)
        if traceback_text is None and (not expected or self.cfg.target):
            lines = traceback.format_exception(type(exc), exc, _lab_frames_first(exc.__traceback__))
            traceback_text = "".join(lines)
        # An error record of the channel (`qasr.errors.to_record`: error_class, exit_code), with the
        # Python class (``exception``), the message as raised, and the traceback for the report.
        self.recorder.send("error", **{**to_record(exc), "i": self.probe.iteration, "message": str(exc),
                                       "exception": type(exc).__name__, "expected": expected, "traceback": traceback_text})  # fmt: skip
        return getattr(exc, "exit_code", 1)


def run(run_dir: Path, progress: Sender | None = None) -> int:
    """Run the scenario ``RUN_DIR/config.json`` names; ``progress`` messages (iterations done) go to
    ``progress`` (none without one)."""
    session = Session(run_dir, progress or Sender(None))
    cfg = session.cfg
    try:
        if cfg.target and cfg.target.startswith("pytest:"):
            from qasr.lab.pytest_child import run_test

            return run_test(session)
        if cfg.target:
            from qasr.lab.usercode import load_target

            inputs = session.inputs()
            session.probe.enter("import")
            return session.user(load_target(cfg.target), inputs)
        return session.builtin()
    except KeyboardInterrupt:
        session.recorder.send("interrupted", i=session.probe.iteration)
        return 130
    except Exception as exc:  # noqa: BLE001 - before the scenario started: bad inputs, the user's import
        return session.error(exc)
    finally:
        session.recorder.close()


def main() -> None:
    if len(sys.argv) != 2:
        print("usage: python -m qasr.lab.child RUN_DIR", file=sys.stderr)
        os._exit(2)
    # The channel keeps a private copy of stdout for progress messages; everything else written to
    # stdout (the user's code, a pytest session, a native library) goes to stderr (the parent's stderr.log).
    progress = Sender.for_stdout()
    code = run(Path(sys.argv[1]), progress)
    progress.close()
    exit_now(code)


if __name__ == "__main__":
    main()
