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
#: Built-in scenario -> what runs it over ``--provider`` (`qasr.lab.providerscenarios`, user-scenario shaped).
PROVIDER_SCENARIOS = {
    "reload": "qasr.lab.providerscenarios:ProviderReload",
    "restart": "qasr.lab.providerscenarios:ProviderRestart",
}


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
    #: The user's own code (`qasr.lab.userscenario`): no model of ours, inputs optional.
    user: bool = False


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
    #: The user's scenario the child runs (``/abs/file.py:NAME``, ``module:NAME``, or
    #: ``pytest:/abs/test_file.py::test_name`` for the leak_limit marker's body form); ``scenario`` is then its name.
    target: str | None = None
    #: Extra pytest arguments of a ``pytest:`` target (rootdir, ini file, plugins of the calling session).
    pytest_args: list[str] = field(default_factory=list)
    #: Trace the Python heap with tracemalloc: a ``py_heap`` series and the growing source lines.
    python_heap: bool = False
    #: Run the scenario over this qasr provider (`qasr.providers.make_provider`) instead of our binding.
    provider: str | None = None

    @property
    def spec(self) -> ScenarioSpec:
        if self.target:
            return ScenarioSpec(self.scenario, f"user scenario {self.target}", user=True)
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


def _references(cfg: RunConfig) -> list[str | None]:
    """Decode every audio file once (an `AudioError` names the reason) and find each one's reference."""
    from qasr.audio import load_audio

    refs: list[str | None] = []
    for i, a in enumerate(cfg.audio):
        load_audio(a)  # decodes and validates; raises AudioError with the reason
        given = cfg.references[i] if i < len(cfg.references) else (cfg.references[0] if len(cfg.references) == 1 else None)
        refs.append(read_reference(given, Path(a)))
    return refs


def _validate_provider(cfg: RunConfig) -> None:
    """``reload``/``restart`` over ``--provider``: one named provider, audio, and its model checked as
    that provider checks it. Then the run is the provider scenario (`qasr.lab.providerscenarios`)."""
    from qasr.engine.modelfile import ModelKind, inspect_model_file, require_kind
    from qasr.providers import parse_spec
    from qasr.providers.chain import WHISPER

    names, auto = parse_spec(cfg.provider)
    if auto:
        raise UsageError(f"--provider {cfg.provider}: the lab measures one provider; name it ({', '.join(names)})")
    if cfg.scenario not in PROVIDER_SCENARIOS:
        raise UsageError(f"--provider runs the scenarios {' and '.join(PROVIDER_SCENARIOS)} (or your own PATH.py:NAME); "
                         f"{cfg.scenario} drives our libchatllm binding directly")  # fmt: skip
    if not cfg.audio:
        raise UsageError(f"scenario {cfg.scenario} needs --audio")
    if names[0] == "qwen3-chatllm":
        if not cfg.model:
            raise UsageError("qwen3-chatllm needs --model (a Qwen3-ASR model file)")
        require_kind(inspect_model_file(cfg.model), ModelKind.ASR)
    elif names[0] == WHISPER:
        from qasr.providers.whisper import model_source

        model_source(cfg.model)  # a checked CTranslate2 folder, or a name (ModelFileError otherwise)
    cfg.target = PROVIDER_SCENARIOS[cfg.scenario]


def _validate_user(cfg: RunConfig) -> RunConfig:
    """A user scenario: its code found and NAME defined (not run), and whatever inputs it was given checked."""
    from qasr.lab.usercode import PYTEST_PREFIX, check_target, parse_target

    if cfg.target is None:
        target = check_target(parse_target(cfg.scenario))
        cfg.target, cfg.scenario = target.spec, target.name
    elif not cfg.target.startswith(PYTEST_PREFIX):
        cfg.target = check_target(parse_target(cfg.target)).spec
    for attr in ("model", "model_b", "aligner"):
        path = getattr(cfg, attr)
        if path and cfg.provider and not Path(path).exists():
            continue  # a provider's model may be a name it resolves itself (faster-whisper's "small")
        if path and not Path(path).exists():
            raise UsageError(f"--{attr.replace('_', '-')}: not found: {path}")
        if path:
            setattr(cfg, attr, str(Path(path).resolve()))
    cfg.references = _references(cfg)
    cfg.audio = [str(Path(a).resolve()) for a in cfg.audio]
    return cfg


def validate(cfg: RunConfig) -> RunConfig:
    """Check the run before any child starts; fill references. Raises `UsageError` / qasr errors."""
    from qasr.engine.modelfile import ModelKind, inspect_model_file, require_kind
    from qasr.lab.usercode import is_target

    if cfg.allocator not in ALLOCATORS:
        raise UsageError(f"unknown allocator {cfg.allocator!r}; choose one of: {', '.join(ALLOCATORS)}")
    if cfg.iterations < 1:
        raise UsageError(f"iterations must be at least 1, got {cfg.iterations}")
    if cfg.context is not None:
        from qasr.text.context import clean_context

        cfg.context = clean_context(cfg.context)  # what the engine will be given, as the report shows it
    if cfg.provider and not cfg.target and not is_target(cfg.scenario):
        _validate_provider(cfg)
    if cfg.target or is_target(cfg.scenario):
        return _validate_user(cfg)
    if cfg.scenario not in SCENARIOS:
        raise UsageError(
            f"unknown scenario {cfg.scenario!r}; choose one of: {', '.join(SCENARIOS)}, or your own as PATH.py:NAME or module:NAME"
        )
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
    refs = _references(cfg)
    if spec.uses_aligner and not all(refs):
        raise UsageError("the aligner scenarios need the transcript of each audio: --reference TEXT_OR_FILE, or <audio>.txt beside it")
    cfg.references = refs
    cfg.audio = [str(Path(a).resolve()) for a in cfg.audio]
    return cfg
