"""The device value: what a latency or energy number was measured (or predicted) on."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Device:
    """A measurement target. Two devices with equal fields are the same device.

    ``source`` says where its numbers come from: ``live`` (measured on this machine by hwnas),
    or ``table`` (a column of a published or profiled table).
    """

    name: str
    source: str = "live"
    hardware: str = ""
    runtime: str = ""
    threads: int | None = None
    batch_size: int = 1
    precision: str = "fp32"

    @property
    def fingerprint(self) -> str:
        payload = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha1(payload.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "fingerprint": self.fingerprint}
