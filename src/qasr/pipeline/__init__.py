"""Pipelines over the engine: transcription (streamed text, segments, batches), forced alignment,
subtitles for audio of any length. Import from the submodules, or the names re-exported by `qasr`."""
