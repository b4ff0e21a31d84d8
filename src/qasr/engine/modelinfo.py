"""`ModelInfo`: what the engine says of a model it loaded (print type 13), parsed once.

Kept apart from `qasr.engine.model` so that the binding's module holds only the native object's life.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from qasr.errors import EngineError


@dataclass(frozen=True)
class ModelInfo:
    """The engine's own description of a loaded model (print type 13) plus what the file says."""

    name: str
    purpose: str
    capabilities: tuple[str, ...]
    param_count: int | None
    context_length: int | None
    raw: dict = field(default_factory=dict, compare=False)

    @classmethod
    def parse(cls, line: str) -> ModelInfo:
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EngineError(f"engine printed unreadable model info: {line[:200]!r}") from exc
        if not isinstance(data, dict):
            raise EngineError(f"engine printed unexpected model info: {line[:200]!r}")
        caps = data.get("capabilities") or ()
        return cls(
            name=str(data.get("name", "")),
            purpose=str(data.get("purpose", "")),
            capabilities=tuple(str(c) for c in caps) if isinstance(caps, list) else (),
            param_count=int(data["param_num"]) if isinstance(data.get("param_num"), (int, float)) else None,
            context_length=int(data["context_length"]) if isinstance(data.get("context_length"), (int, float)) else None,
            raw=data,
        )
