"""The scenarios: their iterations (run inside the lab's child process, `qasr.lab.child`) and
what the verdict needs to know about each (`default_threshold`).

Each iteration marks the phase it is about to enter (so a native abort is attributed to the right
phase), does one engine operation, and samples memory after it. Only the last sample of an
iteration pays for ``gc.collect()`` and ``smaps_rollup`` (the verdict's series); the others are
fast reads (about 30 us; see benchmarks/bench_lab_sampling.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from qasr.engine.modelfile import ModelKind
from qasr.lab.memory import HEAP_METRICS, RSS_METRICS
from qasr.lab.units import KIB, MIB

if TYPE_CHECKING:  # the parent judges runs without importing the engine binding
    from qasr.audio import Audio
    from qasr.engine.model import Model


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
    context: str | None = None

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
    from qasr.engine.model import Model

    settings = {"format": "json"} if kind is ModelKind.ALIGNER else None
    model = Model(
        path,
        kind=kind,
        language=inputs.language,
        threads=inputs.threads,
        max_length=inputs.max_length,
        engine=inputs.engine,
        settings=settings,
    )
    if inputs.context and kind is ModelKind.ASR:
        model.restart(system_prompt=inputs.context)  # every later restart() keeps it
    return model


def _infer(model: Model, audio: Audio, reference: str | None, context: str | None = None) -> Outcome:
    """One turn, without a restart first (the scenario decides about restarts)."""
    if model.file.kind is ModelKind.ALIGNER:
        t0 = time.perf_counter()
        raw = "".join(model.align_raw(audio, reference or "", fresh=False))
        took = time.perf_counter() - t0
        return Outcome(text=raw, rtf=took / audio.seconds, extra={"align_seconds": took})
    from qasr.pipeline.transcribe import TranscriptionStream

    # fresh=False: the scenario decides about restarts; the context is already the system prompt.
    result = TranscriptionStream(model, audio, load_seconds=0.0, fresh=False, context=context).run()
    figures = result.figures
    return Outcome(
        text=result.text,
        ttft_seconds=figures.ttft_seconds,
        tokens=figures.tokens,
        tokens_per_second=figures.tokens_per_second,
        rtf=figures.rtf,
        extra={"raw_text": result.raw_text, "context_echo": result.context_echo},
    )


class Scenario:
    """Base: ``setup`` once, then ``iteration(i)`` N times; ``final_phase`` ends each iteration.

    ``cycles_models``: each iteration loads a whole model (and destroys it, or not), so its
    allocator noise scales with the weights; otherwise an iteration only touches per-call buffers.
    """

    final_phase = "end"
    cycles_models = True

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
        outcome = _infer(model, audio, reference, self.inputs.context)
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
    cycles_models = False
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


RELOAD_SCENARIOS = frozenset(name for name, cls in SCENARIO_CLASSES.items() if getattr(cls, "cycles_models"))
RESTART_SCENARIOS = frozenset(SCENARIO_CLASSES) - RELOAD_SCENARIOS


def default_threshold(scenario: str, weight_bytes: int | None, metric: str) -> int:
    """T in bytes per iteration for a scenario and metric (GUIDE.md §4.5).

    Reload/switch cycles allocate and free whole models, so allocator noise scales with the
    weights: max(1 MiB, 0.5% of the weight bytes). restart()+inference touches only per-call
    buffers: 64 KiB per iteration on RSS-type metrics, 16 KiB on the allocator's live heap, which
    does not carry page-granularity noise.
    """
    if metric not in HEAP_METRICS and metric not in RSS_METRICS:
        known = ", ".join(sorted(HEAP_METRICS | RSS_METRICS))
        raise ValueError(f"unknown metric {metric!r}; known metrics: {known}")
    if scenario in RELOAD_SCENARIOS:
        share = int(math.ceil(0.005 * weight_bytes)) if weight_bytes else 0
        return max(MIB, share)
    if scenario in RESTART_SCENARIOS:
        return 16 * KIB if metric in HEAP_METRICS else 64 * KIB
    known = ", ".join(sorted(RELOAD_SCENARIOS | RESTART_SCENARIOS))
    raise ValueError(f"unknown scenario {scenario!r}; known scenarios: {known}")
