"""Text out: parse the model's output, repair loops; ITN and OpenCC conversion (qasr.text.itn, .convert)."""

from qasr.text.parse import ParsedTranscript, StreamingTextView, parse_asr_output, repair_loops

__all__ = ["ParsedTranscript", "StreamingTextView", "parse_asr_output", "repair_loops"]
