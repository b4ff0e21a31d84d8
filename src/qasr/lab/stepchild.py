"""One step of the ASR → aligner chain in its own short-lived process (the lab's `chain` scenario).

Why a process per step: the study's experiment 5 holds one model in memory at a time, and upstream
chatllm.cpp aborts in ``chatllm_destroy`` for these models (GUIDE §2), so a process that ends is
the only way a model leaves memory. The long-form pipeline already runs one model per child
(`qasr.pipeline.chunk_child`, started by `qasr.pipeline.longform.PhaseRunner` through `qasr.processes.Child`);
the lab reuses it unchanged with one chunk, the whole clip. The ASR step writes its transcript to
the work directory and the aligner step aligns exactly that text, so the chain is the real one.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qasr.errors import EngineError, QasrError
from qasr.processes import exit_reason, signal_of

if TYPE_CHECKING:
    from qasr.audio import Audio

#: The lab's step names and the worker phase each one runs.
STEPS = {"asr": "transcribe", "align": "align"}


class StepCrashed(QasrError):
    """A step's process died (a native abort, a signal): the lab child ends the same way.

    Its exit code is the step child's (134 for SIGABRT), so the run's report says "crashed", with
    the signal, the iteration and the phase, exactly as for a crash of the lab child itself.
    """

    def __init__(self, step: str, returncode: int | None, stderr_tail: list[str]) -> None:
        super().__init__(f"the {step} step's process ended: {exit_reason(returncode)}")
        sig = signal_of(returncode)
        self.exit_code = 128 + sig if sig else (returncode or 1)
        self.step, self.returncode, self.stderr_tail = step, returncode, stderr_tail


@dataclass
class StepResult:
    """What one step's process did: its result line, load time and memory at each of its phases."""

    step: str
    wall_seconds: float
    load_seconds: float | None = None
    peak_rss: int | None = None
    #: The step child's own resident set after loading the model and after its turn.
    memory: dict[str, dict[str, int | None]] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)

    def figures(self) -> dict[str, Any]:
        """The JSON the lab records for this step (the result line's text stays in the iteration)."""
        out = asdict(self)
        out["record"] = {k: v for k, v in self.record.items() if k not in ("units", "text")}
        out["units"] = len(self.record.get("units") or [])
        return out


class ChainSteps:
    """A work directory shared by the two step processes of every iteration."""

    def __init__(self, workdir: Path, asr: str, aligner: str, *, language: str | None, threads: int | None,
                 max_length: int | None, engine: str | None) -> None:  # fmt: skip
        from qasr.spec import EngineSpec

        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.spec = EngineSpec(model=asr, aligner=aligner, language=language, threads=threads, max_length=max_length, engine=engine)
        self._audio: Audio | None = None

    def prepare(self, audio: Audio) -> None:
        """Hand the clip to the steps (rewritten only when it changes) and forget the last iteration's results."""
        from qasr.pipeline.jobfile import AUDIO_FILE, RESULTS, Job

        if audio is not self._audio:
            audio.samples.astype("<f4").tofile(self.workdir / AUDIO_FILE)
            Job(chunks=[(0.0, audio.seconds)], spec=self.spec).save(self.workdir)
            self._audio = audio
        for phase in STEPS.values():
            (self.workdir / RESULTS[phase]).unlink(missing_ok=True)

    def run(self, step: str) -> StepResult:
        """Run one step's process to its end. Raises `StepCrashed`, or the step's own qasr error."""
        from qasr.pipeline.longform import PhaseCrashed, PhaseRunner

        records: list[dict[str, Any]] = []
        worker = PhaseRunner(STEPS[step], self.workdir)
        t0 = time.perf_counter()
        try:
            status = worker.run(records.append)
        except PhaseCrashed as crash:
            # Into the lab child's stderr, whose tail the run's report shows.
            sys.stderr.write("".join(f"[{step} step] {line}\n" for line in crash.stderr_tail))
            sys.stderr.flush()
            raise StepCrashed(step, crash.returncode, crash.stderr_tail) from None
        record = records[0] if records else {}
        if record.get("error"):  # the aligner step reports a failed chunk in its line, not its status
            raise EngineError(f"the {step} step failed: {record['error']}")
        return StepResult(
            step=step,
            wall_seconds=round(time.perf_counter() - t0, 5),
            load_seconds=status.get("load_seconds"),
            peak_rss=worker.peak_rss_bytes or None,
            memory=status.get("memory") or {},
            record=record,
        )

