"""What the benchmark transcribes: audio files with their reference transcripts.

Two layouts, because teams have one or the other: a directory where each audio file has a ``.txt``
of the same stem beside it (``jfk.wav`` + ``jfk.txt``; ``jfk.mp3`` shares it), or a TSV manifest
with ``audio<TAB>reference[<TAB>language]`` per line (paths relative to the manifest; ``#`` lines
and a header row starting with ``audio`` are skipped). Each item knows which error rate applies:
CER for Chinese (characters carry the meaning; there are no spaces to count words by), WER
otherwise. The language column wins; without it, a reference mostly of CJK characters is Chinese.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qasr.errors import UsageError

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".mp4", ".opus", ".webm", ".aac")


@dataclass(frozen=True)
class Item:
    """One audio file, what was said in it, and the scoring language: ``"zh"`` (CER) or ``"en"`` (WER)."""

    audio: Path
    reference: str
    language: str

    @property
    def metric(self) -> str:
        return "cer" if self.language == "zh" else "wer"


def scoring_language(reference: str, given: str | None = None) -> str:
    """``"zh"`` or ``"en"``: the given language if it names one, else by the reference's script."""
    from qasr.text.script import is_cjk
    from qasr.text.itn import normalize_lang

    if given:
        return "zh" if normalize_lang(given) == "zh" else "en"
    letters = [c for c in reference if c.isalnum()]
    return "zh" if letters and sum(map(is_cjk, letters)) > len(letters) / 2 else "en"


def _item(audio: Path, reference: str, language: str | None, where: str) -> Item:
    reference = reference.strip()
    if not reference:
        raise UsageError(f"{where}: the reference transcript is empty")
    if not audio.is_file():
        raise UsageError(f"{where}: audio file not found: {audio}")
    return Item(audio, reference, scoring_language(reference, language))


def from_directory(directory: Path) -> list[Item]:
    """Every audio file in ``directory`` (not below it) with a ``<stem>.txt`` beside it, sorted by name."""
    items = []
    for audio in sorted(p for p in directory.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()):
        text = audio.with_suffix(".txt")
        if text.is_file():
            items.append(_item(audio, text.read_text(encoding="utf-8"), None, str(text)))
    return items


def from_manifest(manifest: Path) -> list[Item]:
    items = []
    for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        cells = line.split("\t")
        if number == 1 and cells[0].strip().lower() in ("audio", "path", "file"):
            continue
        if len(cells) < 2:
            raise UsageError(f"{manifest}:{number}: expected audio<TAB>reference[<TAB>language], got {line[:80]!r}")
        language = cells[2].strip() if len(cells) > 2 and cells[2].strip() else None
        items.append(_item(manifest.parent / cells[0].strip(), cells[1], language, f"{manifest}:{number}"))
    return items


def load_dataset(path: str | Path) -> list[Item]:
    """Items from a directory or a ``.tsv`` manifest; a `UsageError` when there is nothing to score."""
    path = Path(path)
    if path.is_dir():
        items = from_directory(path)
    elif path.is_file():
        items = from_manifest(path)
    else:
        raise UsageError(f"benchmark data not found: {path} (a directory of audio + .txt, or a .tsv manifest)")
    if not items:
        raise UsageError(f"no audio file with a reference in {path}: put <name>.txt beside each audio file, or give a TSV manifest")
    return items
