"""summary.json: the whole summary, for scripts and for `qasr lab compare` / `report`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qasr.lab.analysis import RunRecords


class JsonReporter:
    def write(self, summary: dict[str, Any], records: RunRecords, run_dir: Path) -> list[Path]:
        path = run_dir / "summary.json"
        tmp = path.with_name(path.name + ".part")
        tmp.write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
        tmp.replace(path)
        return [path]
