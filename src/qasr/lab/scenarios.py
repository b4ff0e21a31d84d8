"""The scenarios' iterations, run inside the lab's child process (`qasr.lab.child`).

Each iteration marks the phase it is about to enter (so a native abort is attributed to the right
phase), does one engine operation, and samples memory after it. Only the last sample of an
iteration pays for ``gc.collect()`` and ``smaps_rollup`` (the verdict's series); the others are
fast reads (about 30 us; see benchmarks/bench_lab_sampling.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from qasr.audio import Audio
from qasr.engine.model import Model
from qasr.engine.modelfile import ModelKind


class Probe(Protocol):
    """What a scenario needs from the child: phase markers and memory samples."""

    def enter(self, phase: str) -> None: ...

    def sample(self, phase: str, *, full: bool = False) -> None: ...

    def turn(self, text: str, seconds: float) -> None: ...


@dataclass
class Inputs:
    """Decoded audio and references, prepared once so iterations measure the engine, not decoding."""

    audio: list[Audio]
    references: list[str | None]
    language: str | None = None
    threads: int | None = None
    max_length: int | None = None
    engine: str | None = None

    def pick(self, i: int) -> tuple[Audio, str | None]:
        k = (i - 1) % len(self.audio)
        return self.audio[k], self.references[k]


@dataclass
class Outcome:
    """What one engine turn produced, and how fast."""

    text: str
    load_seconds: float | None = None
    ttft_seconds: float | None = None
    tokens: int | None = None
    tokens_per_second: float | None = None
    rtf: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _load(path: str, inputs: Inputs, kind: ModelKind) -> Model:
    settings = {"format": "json"} if kind is ModelKind.ALIGNER else None
    return Model(
        path,
        kind=kind,
        language=inputs.language,
        threads=inputs.threads,
        max_length=inputs.max_length,
        engine=inputs.engine,
        settings=settings,
    )


def _infer(model: Model, audio: Audio, reference: str | None) -> Outcome:
    """One turn, without a restart first (the scenario decides about restarts)."""
    if model.file.kind is ModelKind.ALIGNER:
        t0 = time.perf_counter()
        raw = "".join(model.align(audio, reference or "", fresh=False))
        took = time.perf_counter() - t0
        return Outcome(text=raw, rtf=took / audio.seconds, extra={"align_seconds": took})
    from qasr.pipeline.transcribe import TranscriptionStream

    stream = TranscriptionStream(model, audio, load_seconds=0.0, fresh=False)
    result = stream.run()
    return Outcome(
        text=result.text,
        ttft_seconds=result.ttft_seconds,
        tokens=result.tokens,
        tokens_per_second=result.tokens_per_second,
        rtf=result.rtf,
        extra={"raw_text": result.raw_text},
    )


class Scenario:
    """Base: ``setup`` once, then ``iteration(i)`` N times; ``final_phase`` ends each iteration."""

    final_phase = "end"

    def __init__(self, probe: Probe, inputs: Inputs, models: list[str]) -> None:
        self.probe = probe
        self.inputs = inputs
        self.models = models

    def setup(self) -> None:
        """Work done once before the iterations (for example loading a model to reuse)."""

    def iteration(self, i: int) -> Outcome:
        raise NotImplementedError

    # -- building blocks ------------------------------------------------------------------

    def _create(self, path: str, kind: ModelKind, tag: str = "") -> tuple[Model, float]:
        self.probe.enter(f"load{tag}")
        t0 = time.perf_counter()
        model = _load(path, self.inputs, kind)
        took = time.perf_counter() - t0
        self.probe.sample(f"loaded{tag}")
        return model, took

    def _turn(self, model: Model, i: int, tag: str = "", *, last: bool = False) -> Outcome:
        audio, reference = self.inputs.pick(i)
        self.probe.enter(f"infer{tag}")
        t0 = time.perf_counter()
        outcome = _infer(model, audio, reference)
        self.probe.turn(outcome.text, time.perf_counter() - t0)
        self.probe.sample(f"inferred{tag}", full=last)
        return outcome

    def _destroy(self, model: Model, tag: str = "", *, last: bool = False) -> None:
        self.probe.enter(f"destroy{tag}")
        model.close()
        self.probe.sample(f"destroyed{tag}", full=last)


class Reload(Scenario):
    final_phase = "destroyed"
    kind = ModelKind.ASR

    def iteration(self, i: int) -> Outcome:
        model, load = self._create(self.models[0], self.kind)
        outcome = self._turn(model, i)
        self._destroy(model, last=True)
        outcome.load_seconds = load
        return outcome


class Restart(Scenario):
    final_phase = "restarted"
    kind = ModelKind.ASR

    def setup(self) -> None:
        self.model, self.load_seconds = self._create(self.models[0], self.kind, ":setup")

    def iteration(self, i: int) -> Outcome:
        outcome = self._turn(self.model, i)
        self.probe.enter("restart")
        self.model.restart()
        self.probe.sample("restarted", full=True)
        return outcome


class Switch(Scenario):
    final_phase = "destroyed:B"

    def iteration(self, i: int) -> Outcome:
        outcomes = []
        for tag, path in ((":A", self.models[0]), (":B", self.models[1])):
            model, load = self._create(path, ModelKind.ASR, tag)
            outcome = self._turn(model, i, tag)
            self._destroy(model, tag, last=tag == ":B")
            outcome.load_seconds = load
            outcomes.append(outcome)
        first, second = outcomes
        first.extra["text_b"] = second.text
        first.extra["load_seconds_b"] = second.load_seconds
        return first


class NoClose(Scenario):
    """Create and load every iteration and never destroy: what a broken or forgotten destroy costs."""

    final_phase = "inferred"

    def setup(self) -> None:
        self.kept: list[Model] = []

    def iteration(self, i: int) -> Outcome:
        model, load = self._create(self.models[0], ModelKind.ASR)
        self.kept.append(model)  # keep it referenced: the native object lives on regardless
        outcome = self._turn(model, i, last=True)
        outcome.load_seconds = load
        return outcome


class AlignerReload(Reload):
    kind = ModelKind.ALIGNER


class AlignerRestart(Restart):
    kind = ModelKind.ALIGNER


SCENARIO_CLASSES: dict[str, Callable[[Probe, Inputs, list[str]], Scenario]] = {
    "reload": Reload,
    "restart": Restart,
    "switch": Switch,
    "noclose": NoClose,
    "aligner-reload": AlignerReload,
    "aligner-restart": AlignerRestart,
}
