"""OpenAI's transcription response formats, from one of our result records (`TranscriptionResult.to_dict`)."""

from __future__ import annotations

from typing import Any

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")

def _items(record: dict[str, Any]) -> list[tuple[str, float, float, str]]:
    lang = record.get("language") or ""
    return [(s["text"], s["start"], s["end"], lang) for s in record.get("segments") or []]


def render(record: dict[str, Any], fmt: str, words: bool) -> tuple[str | dict[str, Any], str]:
    """(body, media type) of one result in ``fmt``; a dict body is JSON."""
    from qasr.pipeline.writers import render_timed_text

    if fmt == "text":
        return record["text"] + "\n", "text/plain; charset=utf-8"
    if fmt in ("srt", "vtt"):
        media = "application/x-subrip" if fmt == "srt" else "text/vtt"
        return render_timed_text(_items(record), fmt, float(record.get("audio_seconds") or 0.0)), f"{media}; charset=utf-8"
    if fmt == "verbose_json":
        body: dict[str, Any] = {
            "task": "transcribe",
            "language": (record.get("language") or "").lower(),
            "duration": record.get("audio_seconds"),
            "text": record["text"],
            "segments": [
                {"id": s["id"], "seek": 0, "start": s["start"], "end": s["end"], "text": s["text"], "tokens": [],
                 "temperature": 0.0, "avg_logprob": 0.0, "compression_ratio": 0.0, "no_speech_prob": 0.0}
                for s in record.get("segments") or []
            ],  # fmt: skip
        }
        if words:
            body["words"] = [{"word": w["text"], "start": w["start"], "end": w["end"]}
                             for s in record.get("segments") or [] for w in (s.get("words") or [])]  # fmt: skip
        return body, "application/json"
    return {"text": record["text"]}, "application/json"
