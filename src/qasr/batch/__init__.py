"""``qasr batch``: an archive of audio files through Ray Data actors, locally or on a cluster.

Inputs (`qasr.batch.inputs`) are checked, then each is hashed, decoded and split at pauses in Ray
tasks (`qasr.batch.pieces`); actors that hold a loaded model transcribe the pieces
(`qasr.batch.actor`); the driver reassembles each input, writes its outputs atomically
(`qasr.batch.outputs`) and appends its row to the manifest (`qasr.batch.manifest`), which a rerun
resumes from. Attempts that kill an actor are counted on the shared filesystem (`qasr.batch.ledger`)
so a poison input fails after ``retries`` instead of looping. Ray is imported only when a batch runs
(`qasr.batch.cluster`); nothing else in qasr needs it.
"""

from qasr.batch.inputs import InputItem, expand_inputs
from qasr.batch.run import BatchOptions, Summary, run_batch

__all__ = ["BatchOptions", "InputItem", "Summary", "expand_inputs", "run_batch"]
