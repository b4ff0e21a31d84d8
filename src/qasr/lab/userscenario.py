"""A user's function or class as a lab scenario, and the `LabContext` its code may ask for.

The shapes a user writes (docs/lab.md, "Your own code"):

* a **function**, one iteration per call: ``f()``, ``f(i)`` or ``f(i, lab)``;
* a **class** with ``iteration(i)`` and, if it wants them, ``setup()`` and ``teardown()``; it is
  created once as ``Cls()`` or ``Cls(lab)``.

``lab`` is a `LabContext`: the run's inputs (``--model``, ``--audio`` decoded once, ``--language``
...) and ``lab.phase(name)``, a ``with`` block that marks a phase of the iteration and samples memory
when it ends, as the built-in scenarios do around each engine call. Every iteration ends with the
lab's own full sample (phase ``end``, after ``gc.collect()``), which the verdict judges.

What an iteration returns is kept when it is text (the iteration's output, scored against
``--reference`` when one is given) or an `Outcome`; anything else is dropped at once, so the lab
holds no reference to it.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from qasr.lab.scenarios import Inputs, Outcome, Probe, Scenario

if TYPE_CHECKING:
    from qasr.audio import Audio
    from qasr.lab.config import RunConfig


class LabContext:
    """What a user's scenario may use: the run's inputs and phase markers."""

    def __init__(self, cfg: RunConfig, inputs: Inputs, probe: Probe) -> None:
        self._probe = probe
        self._inputs = inputs
        self.iterations = cfg.iterations
        self.model, self.model_b, self.aligner = cfg.model, cfg.model_b, cfg.aligner
        self.provider = cfg.provider
        self.audio: list[Audio] = list(inputs.audio)
        self.references = list(inputs.references)
        self.language, self.context = inputs.language, inputs.context
        self.threads, self.max_length, self.max_tokens = inputs.threads, inputs.max_length, inputs.max_tokens
        self.engine = inputs.engine
        #: The run directory: a place for files the scenario writes.
        self.workdir = inputs.workdir

    def pick(self, i: int) -> tuple[Audio, str | None]:
        """Iteration i's audio and reference (iterations cycle through ``--audio``)."""
        if not self.audio:
            from qasr.errors import UsageError

            raise UsageError("this scenario needs audio: give --audio FILE")
        return self._inputs.pick(i)

    @contextlib.contextmanager
    def phase(self, name: str, *, full: bool = False) -> Iterator[None]:
        """Mark a phase (a crash inside it is reported with its name) and sample memory after it
        (``full``: after ``gc.collect()``, with USS/PSS, as the sample that ends an iteration)."""
        self._probe.enter(name)
        yield
        self._probe.sample(name, full=full)

    def watch(self, provider: Any) -> None:
        """Sample the process ``provider``'s engine lives in, when it has one of its own
        (``engine_pid``: crispasr), instead of the lab's; the lab's own becomes a second series."""
        watch = getattr(self._probe, "watch", None)
        if watch is not None:
            watch(provider)


def threshold_kind(target: Any) -> str:
    """Which built-in scenario's default T judges this one: ``reload`` when the user's class says
    ``cycles_models = True`` (every iteration loads a whole model), else ``restart``'s."""
    from qasr.lab.scenarios import USER_SCENARIO

    return "reload" if getattr(target, "cycles_models", False) else USER_SCENARIO


def model_files(cfg: RunConfig) -> list[dict[str, Any]]:
    """What the report says of each model given (``-m``, ``--model-b``, ``--aligner``): a chatllm.cpp
    file's header, or any other file or folder's name and size (its weight bytes, for the reload T)."""
    from pathlib import Path

    from qasr.engine.modelfile import inspect_model_file
    from qasr.errors import QasrError

    found = []
    for path in (p for p in (cfg.model, cfg.model_b, cfg.aligner) if p):
        try:
            found.append(inspect_model_file(path).to_dict())
        except QasrError:
            p = Path(path)
            files = [f for f in p.rglob("*") if f.is_file()] if p.is_dir() else [p] if p.is_file() else []
            found.append({"path": path, "name": p.name, "kind": "other", "weight_bytes": sum(f.stat().st_size for f in files) or None})
    return found


def _positional(fn: Any) -> int:
    """How many positional arguments ``fn`` takes (a large number for ``*args``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 0
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 2
    return sum(1 for p in params if p.kind in kinds)


def _as_outcome(result: Any) -> Outcome:
    if isinstance(result, Outcome):
        return result
    return Outcome(text=result if isinstance(result, str) else "")


class UserScenario(Scenario):
    """Runs a user's function or class under the lab's phases; no model of ours is loaded."""

    final_phase = "end"
    cycles_models = False

    def __init__(self, probe: Probe, inputs: Inputs, target: Any, lab: LabContext) -> None:
        super().__init__(probe, inputs, [])
        self.target = target
        self.lab = lab
        self.instance: Any = None
        self._step: Any = None

    def setup(self) -> None:
        """Create the class (``Cls()`` or ``Cls(lab)``) and run its ``setup()``; a function needs none."""
        self.probe.enter("setup")
        if inspect.isclass(self.target):
            self.instance = self.target(self.lab) if _positional(self.target) >= 1 else self.target()
            step = getattr(self.instance, "iteration", None)
            if not callable(step):
                raise TypeError(f"{self.target.__name__} has no iteration(i) method")
            if callable(getattr(self.instance, "setup", None)):
                self.instance.setup()
            self._step, wanted = step, min(_positional(step), 2)
        elif callable(self.target):
            self._step, wanted = self.target, min(_positional(self.target), 2)
        else:
            raise TypeError(f"the scenario must be a function or a class, not {type(self.target).__name__}")
        self._args = wanted
        self.probe.sample("setup")

    def iteration(self, i: int) -> Outcome:
        self.probe.enter("iteration")
        result = self._step(*(i, self.lab)[: self._args])
        outcome = _as_outcome(result)
        del result
        self.probe.sample(self.final_phase, full=True)
        return outcome

    def teardown(self) -> None:
        if self.instance is not None and callable(getattr(self.instance, "teardown", None)):
            self.probe.enter("teardown")
            self.instance.teardown()
            self.probe.sample("teardown")
