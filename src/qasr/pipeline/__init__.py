"""Pipelines over the engine: transcription (streamed), later alignment and subtitles."""

from qasr.pipeline.transcribe import TranscriptionResult, TranscriptionStream, transcribe

__all__ = ["TranscriptionResult", "TranscriptionStream", "transcribe"]
