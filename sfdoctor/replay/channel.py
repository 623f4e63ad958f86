"""What the replay's child process sends to sfdoctor: length-prefixed pickles of `Update`s on a pipe.

Importing this module must not import torch: sfdoctor's own process never does.
"""

from __future__ import annotations

import pickle
import struct
from dataclasses import dataclass

from .record import OptimizerTrace, Outcome

HEADER = struct.Struct("<Q")


@dataclass
class Update:
    """Sent every second or so while the script steps, at the stop, and once more at the end.

    `optimizers` carry only what is new since the previous update in their growing lists (per-group steps
    and changes, events, step sites); everything else in them is current.
    """

    optimizers: list[OptimizerTrace]
    steps: int  # the replay's step count (Instrumentation.steps)
    stop_reason: str | None  # "steps" once --steps was reached
    outcome: Outcome | None = None  # in the last update only


def encode(update: Update) -> bytes:
    data = pickle.dumps(update, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)) + data


class Decoder:
    """Turns the bytes read from the pipe, in any chunks, back into updates; a truncated last one is dropped."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Update]:
        self._buffer += data
        updates = []
        while len(self._buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(self._buffer)
            end = HEADER.size + size
            if len(self._buffer) < end:
                break
            updates.append(pickle.loads(self._buffer[HEADER.size:end]))  # our own child wrote it
            del self._buffer[:end]
        return updates
