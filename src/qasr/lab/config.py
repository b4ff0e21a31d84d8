"""What one lab run is: scenario, models, audio, iterations, allocator. Checked in the parent.

Everything a user can get wrong (a missing model, an aligner where an ASR model belongs, audio that
does not decode, a scenario that needs a second model) is caught here, before a child process
starts, with the same errors and exit codes as the rest of qasr.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from qasr.errors import UsageError

ALLOCATORS = ("glibc", "arena2", "trim", "jemalloc")


@dataclass(frozen=True)
class ScenarioSpec:
    """A scenario's contract: what it needs and which sample ends an iteration."""

    name: str
    description: str
    uses_aligner: bool = False
    needs_model_b: bool = False
    destroys: bool = False
    #: An ASR model *and* an aligner (the ASR → aligner chain); scored on the ASR text.
    needs_aligner: bool = False


SCENARIOS: dict[str, ScenarioSpec] = {
    s.name: s
    for s in (
        ScenarioSpec("reload", "every iteration: create, load, transcribe, destroy", destroys=True),
        ScenarioSpec("restart", "load once; every iteration: transcribe, then restart()"),
        ScenarioSpec("switch", "every iteration: load A, transcribe, destroy; then the same with B", needs_model_b=True, destroys=True),
        ScenarioSpec("switch-restart", "load A and B once; every iteration: transcribe with A, restart(), then with B, restart()", needs_model_b=True),
        ScenarioSpec("aligner-reload", "every iteration: create the aligner, load, align, destroy", uses_aligner=True, destroys=True),
        ScenarioSpec("aligner-restart", "load the aligner once; every iteration: align, then restart()", uses_aligner=True),
        ScenarioSpec("noclose", "every iteration: create, load, transcribe; never destroy"),
        ScenarioSpec("chain", "every iteration: transcribe in a fresh ASR process, then align that transcript in a fresh aligner process", needs_aligner=True),
        ScenarioSpec("chain-restart", "load the ASR model and the aligner once; every iteration: transcribe, restart(), align the transcript, restart()", needs_aligner=True),
    )
}


@dataclass
class RunConfig:
    """One run of one scenario; serialised to JSON for the child process."""

    scenario: str
    model: str | None = None
    model_b: str | None = None
    aligner: str | None = None
    audio: list[str] = field(default_factory=list)
    references: list[str | None] = field(default_factory=list)
    iterations: int = 100
    allocator: str = "glibc"
    engine: str | None = None
    language: str | None = None
    #: Hint text for Qwen3-ASR's system turn (set once per loaded model), recorded with the run.
    context: str | None = None
    threads: int | None = None
    max_length: int | None = None
    peaks: bool = True
    trace_native: bool = False
    #: N of the traced runs (N and 2N iterations) of --trace-native.
    trace_iterations: int = 20
    #: Set by the runner for a traced child: where memray writes its capture.
    trace_file: str | None = None
    #: Text post-processing of each iteration's output: {"itn": bool, "opencc": "s2twp" | ...}.
    postprocess: dict | None = None
    #: Bytes per iteration for every metric's verdict, instead of the scenario's defaults (GUIDE §4.5).
    threshold: int | None = None
    #: Tokens each engine turn may generate (None: until the model stops; synthetic models never do).
    max_tokens: int | None = None
    results_dir: str = "results"

    @property
    def spec(self) -> ScenarioSpec:
        return SCENARIOS[self.scenario]

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=2)

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        return cls(**json.loads(text))

    def model_paths(self) -> list[str]:
        """The model files this run loads, in order."""
        if self.spec.uses_aligner:
            return [self.aligner] if self.aligner else []
        second = self.model_b if self.spec.needs_model_b else self.aligner if self.spec.needs_aligner else None
        return [p for p in (self.model, second) if p]


def read_reference(value: str | None, audio: Path) -> str | None:
    """A reference transcript: the given text, the file it names, or ``<audio>.txt`` beside the audio."""
    if value:
        p = Path(value)
        if len(value) < 4096 and p.is_file():
            return p.read_text(encoding="utf-8").strip()
        return value.strip()
    sibling = audio.with_suffix(".txt")
    return sibling.read_text(encoding="utf-8").strip() if sibling.is_file() else None


def validate(cfg: RunConfig) -> RunConfig:
    """Check the run before any child starts; fill references. Raises `UsageError` / qasr errors."""
    from qasr.audio import load_audio
    from qasr.engine.modelfile import ModelKind, inspect_model_file, require_kind

    if cfg.scenario not in SCENARIOS:
        raise UsageError(f"unknown scenario {cfg.scenario!r}; choose one of: {', '.join(SCENARIOS)}")
    if cfg.allocator not in ALLOCATORS:
        raise UsageError(f"unknown allocator {cfg.allocator!r}; choose one of: {', '.join(ALLOCATORS)}")
    if cfg.iterations < 1:
        raise UsageError(f"iterations must be at least 1, got {cfg.iterations}")
    spec = cfg.spec
    wanted = [("aligner", ModelKind.ALIGNER, "a Qwen3-ForcedAligner model file")] if spec.uses_aligner else [
        ("model", ModelKind.ASR, "a Qwen3-ASR model file"),
        *([("model_b", ModelKind.ASR, "a second Qwen3-ASR model file")] if spec.needs_model_b else []),
        *([("aligner", ModelKind.ALIGNER, "a Qwen3-ForcedAligner model file")] if spec.needs_aligner else []),
    ]  # fmt: skip
    for attr, kind, what in wanted:
        path = getattr(cfg, attr)
        if not path:
            raise UsageError(f"scenario {cfg.scenario} needs --{attr.replace('_', '-')} ({what})")
        require_kind(inspect_model_file(path), kind)
    if not cfg.audio:
        raise UsageError("give at least one --audio file")
    refs: list[str | None] = []
    for i, a in enumerate(cfg.audio):
        load_audio(a)  # decodes and validates; raises AudioError with the reason
        given = cfg.references[i] if i < len(cfg.references) else (cfg.references[0] if len(cfg.references) == 1 else None)
        refs.append(read_reference(given, Path(a)))
    if spec.uses_aligner and not all(refs):
        raise UsageError("the aligner scenarios need the transcript of each audio: --reference TEXT_OR_FILE, or <audio>.txt beside it")
    cfg.references = refs
    cfg.audio = [str(Path(a).resolve()) for a in cfg.audio]
    if cfg.context is not None:
        from qasr.text.context import clean_context

        cfg.context = clean_context(cfg.context)  # what the engine will be given, as the report shows it
    return cfg
