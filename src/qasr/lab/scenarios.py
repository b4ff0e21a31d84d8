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

    def step(self, name: str, figures: dict[str, Any]) -> None: ...


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
    max_tokens: int | None = None
    #: Where a scenario may keep files for its own child processes (the run directory).
    workdir: str | None = None

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


def _infer(model: Model, audio: Audio, reference: str | None, context: str | None = None, max_tokens: int | None = None) -> Outcome:
    """One turn, without a restart first (the scenario decides about restarts)."""
    if model.file.kind is ModelKind.ALIGNER:
        t0 = time.perf_counter()
        raw = "".join(model.align_raw(audio, reference or "", fresh=False))
        took = time.perf_counter() - t0
        return Outcome(text=raw, rtf=took / audio.seconds, extra={"align_seconds": took})
    from qasr.pipeline.transcribe import TranscriptionStream

    # fresh=False: the scenario decides about restarts; the context is already the system prompt.
    result = TranscriptionStream(model, audio, load_seconds=0.0, fresh=False, context=context, max_tokens=max_tokens).run()
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

    def teardown(self) -> None:
        """Work done once after the last iteration, before the final samples (a user's scenario
        releases what it holds; the built-in ones keep their models: upstream aborts in destroy)."""

    # -- building blocks ------------------------------------------------------------------

    def _create(self, path: str, kind: ModelKind, tag: str = "") -> tuple[Model, float]:
        self.probe.enter(f"load{tag}")
        t0 = time.perf_counter()
        model = _load(path, self.inputs, kind)
        took = time.perf_counter() - t0
        self.probe.sample(f"loaded{tag}")
        return model, took

    def _turn(self, model: Model, i: int, tag: str = "", *, last: bool = False, text: str | None = None) -> Outcome:
        """One engine turn on iteration i's audio; an aligner aligns ``text`` (default: the reference)."""
        audio, reference = self.inputs.pick(i)
        self.probe.enter(f"infer{tag}")
        t0 = time.perf_counter()
        outcome = _infer(model, audio, reference if text is None else text, self.inputs.context, self.inputs.max_tokens)
        self.probe.turn(outcome.text, time.perf_counter() - t0)
        self.probe.sample(f"inferred{tag}", full=last)
        return outcome

    def _restart(self, model: Model, tag: str = "", *, last: bool = False) -> None:
        self.probe.enter(f"restart{tag}")
        model.restart()
        self.probe.sample(f"restarted{tag}", full=last)

    def _load_two(self, second_kind: ModelKind, tags: tuple[str, str], second: str) -> tuple[Model, Model]:
        """Load the first model and transcribe once, load the second beside it, transcribe again.

        Stops in setup if the first model went silent once the second was loaded: upstream 4a4310e
        prints every model's text through the callback of the model started last, which qasr's binding
        routes by the running turn (`qasr.engine.switchboard`). Should that ever fail, a series of
        turns that do no work would mislead. Loading a second ASR model is refused there (the error
        ends the run in phase ``load:setup:<second tag>``).
        """
        a, b = tags
        first, self.load_seconds = self._create(self.models[0], ModelKind.ASR, f":setup:{a}")
        before = self._turn(first, 1, f":setup:{a}")
        self._restart(first, f":setup:{a}")
        other, self.load_seconds_b = self._create(self.models[1], second_kind, f":setup:{b}")
        after = self._turn(first, 1, ":setup:check")
        self._restart(first, ":setup:check")
        if before.text.strip() and not after.text.strip():
            from qasr.errors import EngineError

            raise EngineError(
                f"loading {second} silenced the model loaded before it in this process (it transcribed "
                f"{before.text[:40]!r} before, nothing after): the engine's text did not reach this model's turn"
            )
        return first, other

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
        self._restart(self.model, last=True)
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


class SwitchRestart(Scenario):
    """`switch` without destroy: A and B loaded once and kept, used alternately, restart() after each turn."""

    final_phase = "restarted:B"
    cycles_models = False

    def setup(self) -> None:
        self.a, self.b = self._load_two(ModelKind.ASR, ("A", "B"), "model B")

    def iteration(self, i: int) -> Outcome:
        first = self._turn(self.a, i, ":A")
        self._restart(self.a, ":A")
        second = self._turn(self.b, i, ":B")
        self._restart(self.b, ":B", last=True)
        first.extra["text_b"] = second.text
        return first


class NoClose(Scenario):
    """Create and load every iteration and never destroy: what a broken or forgotten destroy costs.

    Each `Model` is dropped unclosed, as a program that forgets close() does: its native object lives
    on regardless. Keeping them referenced would make qasr refuse the next load on upstream (two live
    Qwen3-ASR models share one prompt encoder there: `qasr.engine.switchboard`).
    """

    final_phase = "inferred"

    def iteration(self, i: int) -> Outcome:
        model, load = self._create(self.models[0], ModelKind.ASR)
        outcome = self._turn(model, i, last=True)
        outcome.load_seconds = load
        return outcome


class AlignerReload(Reload):
    kind = ModelKind.ALIGNER


class AlignerRestart(Restart):
    kind = ModelKind.ALIGNER


class ChainRestart(Scenario):
    """The study's exp5 the way a server would hold it: both models loaded once, restart() after each turn.

    The aligner aligns the transcript the ASR model just produced, not the reference, so the chain
    is the real one; both models share this process, so a leak in either accumulates here.
    """

    final_phase = "restarted:align"
    cycles_models = False

    def setup(self) -> None:
        self.asr, self.aligner = self._load_two(ModelKind.ALIGNER, ("asr", "align"), "the aligner")

    def iteration(self, i: int) -> Outcome:
        outcome = self._turn(self.asr, i, ":asr")
        self._restart(self.asr, ":asr")
        if outcome.text.strip():
            aligned = self._turn(self.aligner, i, ":align", text=outcome.text)
            outcome.extra.update(align_seconds=aligned.extra["align_seconds"], align_text=aligned.text)
        else:  # nothing to align: the phases are still sampled, so the series has no hole
            self.probe.sample("inferred:align")
            outcome.extra["align_skipped"] = "no speech"
        self._restart(self.aligner, ":align", last=True)
        return outcome


class Chain(Scenario):
    """The study's exp5 as its constraint demands: one model in memory at a time, each in its own process.

    Each step runs in a short-lived child (`qasr.lab.stepchild`): this process never loads a model,
    so its own series shows what survives across iterations here (the verdict's series), and each
    step's peak and resident set are recorded per iteration (`qasr.lab.stepgrowth` judges them).
    """

    final_phase = "done:align"
    cycles_models = False  # this process loads no model; the step children's series get the model-cycle T

    def setup(self) -> None:
        from pathlib import Path

        from qasr.lab.stepchild import ChainSteps

        base = Path(self.inputs.workdir) if self.inputs.workdir else Path.cwd()
        self.steps = ChainSteps(base / "steps", self.models[0], self.models[1], language=self.inputs.language,
                                threads=self.inputs.threads, max_length=self.inputs.max_length, engine=self.inputs.engine)  # fmt: skip

    def _step(self, name: str, *, last: bool = False) -> Any:
        self.probe.enter(name)
        result = self.steps.run(name)
        self.probe.step(name, result.figures())
        self.probe.sample(f"done:{name}", full=last)
        return result

    def iteration(self, i: int) -> Outcome:
        audio, _ = self.inputs.pick(i)
        self.steps.prepare(audio)
        asr = self._step("asr")
        text, seconds = asr.record.get("text") or "", asr.record.get("seconds")
        self.probe.turn(text, asr.wall_seconds)
        align = self._step("align", last=True)
        tokens = asr.record.get("tokens")
        return Outcome(
            text=text,
            load_seconds=asr.load_seconds,
            ttft_seconds=asr.record.get("ttft"),
            tokens=tokens,
            tokens_per_second=tokens / seconds if tokens and seconds else None,
            rtf=seconds / audio.seconds if seconds else None,
            extra={"align_seconds": align.record.get("seconds"), "align_load_seconds": align.load_seconds,
                   "align_skipped": align.record.get("skipped")},
        )  # fmt: skip


SCENARIO_CLASSES: dict[str, Callable[[Probe, Inputs, list[str]], Scenario]] = {
    "reload": Reload,
    "restart": Restart,
    "switch": Switch,
    "switch-restart": SwitchRestart,
    "noclose": NoClose,
    "aligner-reload": AlignerReload,
    "aligner-restart": AlignerRestart,
    "chain": Chain,
    "chain-restart": ChainRestart,
}


#: How the verdict treats a user's scenario (`qasr.lab.userscenario`): like restart, per-call buffers only.
USER_SCENARIO = "user"
RELOAD_SCENARIOS = frozenset(name for name, cls in SCENARIO_CLASSES.items() if getattr(cls, "cycles_models"))
RESTART_SCENARIOS = frozenset(SCENARIO_CLASSES) - RELOAD_SCENARIOS | {USER_SCENARIO}


def model_cycle_threshold(weight_bytes: int | None) -> int:
    """T for a series where every iteration loads a whole model: max(1 MiB, 0.5% of its weight bytes).

    Also the T of the `chain` scenario's step-children series: each of those processes loads a model.
    """
    share = int(math.ceil(0.005 * weight_bytes)) if weight_bytes else 0
    return max(MIB, share)


def default_threshold(scenario: str, weight_bytes: int | None, metric: str) -> int:
    """T in bytes per iteration for a scenario and metric (GUIDE.md §4.5).

    Reload/switch cycles allocate and free whole models, so allocator noise scales with the
    weights: max(1 MiB, 0.5% of the weight bytes). restart()+inference touches only per-call
    buffers: 64 KiB per iteration on RSS-type metrics, 16 KiB on the allocator's live heap, which
    does not carry page-granularity noise. A user's scenario (``scenario="user"``) is judged as
    restart: what it keeps between calls should not grow.
    """
    if metric not in HEAP_METRICS and metric not in RSS_METRICS:
        known = ", ".join(sorted(HEAP_METRICS | RSS_METRICS))
        raise ValueError(f"unknown metric {metric!r}; known metrics: {known}")
    if scenario in RELOAD_SCENARIOS:
        return model_cycle_threshold(weight_bytes)
    if scenario in RESTART_SCENARIOS:
        return 16 * KIB if metric in HEAP_METRICS else 64 * KIB
    known = ", ".join(sorted(RELOAD_SCENARIOS | RESTART_SCENARIOS))
    raise ValueError(f"unknown scenario {scenario!r}; known scenarios: {known}")
