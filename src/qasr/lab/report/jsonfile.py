"""summary.json: the whole summary, for scripts and for `qasr lab compare` / `report`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qasr.fileio import write_atomic
from qasr.lab.analysis import RunRecords


class JsonReporter:
    def write(self, summary: dict[str, Any], records: RunRecords, run_dir: Path) -> list[Path]:
        path = run_dir / "summary.json"
        write_atomic(path, json.dumps(summary, indent=2, ensure_ascii=False, default=str))
        return [path]
