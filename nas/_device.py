"""The device value: what a latency or energy number was measured (or predicted) on, and its file.

A measured profile records its device in ``device.json`` beside its tables (:data:`DEVICE_FILE`):
the :class:`Device` fields with its fingerprint under ``"device"``, and whatever else the writer
records beside it (hwnas-profile: the profile's fingerprint, space, settings, host, energy meter,
timestamps). :meth:`Device.write` and :meth:`Device.read` are the only code that writes and parses
that file; the JSON layout (2-space indent, sorted keys, a final newline) is that of every profile
written so far.
"""

from __future__ import annotations

import hashlib
import json
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Self

from nas._files import replace_text
from nas.errors import HwnasError

DEVICE_FILE = "device.json"


class DeviceFileError(HwnasError, ValueError):
    """A ``device.json`` that cannot be read back as a device (not JSON, or a missing, unknown or
    mistyped field); the message names the file and the field."""


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

    def write(self, directory: str | Path, record: Mapping[str, Any] | None = None) -> Path:
        """Write ``directory/device.json``: this device (with its fingerprint) under ``"device"`` and
        ``record``'s members beside it; returns the file's path.

        The file is written to a temporary file, fsynced and renamed, so a crash leaves the old or
        the new file, never half of one. Values JSON cannot hold (a path) are written as strings.
        """
        record = dict(record or {})
        if "device" in record:
            raise ValueError(f"record must not hold a 'device' member (the device writes its own), got {record}")
        path = Path(directory) / DEVICE_FILE
        content = {**record, "device": self.to_dict()}
        replace_text(path, json.dumps(content, indent=2, sort_keys=True, default=str) + "\n")
        return path

    @classmethod
    def read(cls, directory: str | Path) -> Self:
        """The device recorded in ``directory/device.json``.

        Raises :class:`DeviceFileError` naming the file for a missing file, bad JSON, a missing,
        unknown or mistyped field, or a recorded fingerprint its fields do not give (the file was
        edited by hand, or written under another device rule).
        """
        path = Path(directory) / DEVICE_FILE
        recorded = read_device_record(directory).get("device")
        if not isinstance(recorded, dict):
            raise DeviceFileError(f"{path} has no 'device' object (got {recorded!r}); hwnas-profile writes one")
        types = typing.get_type_hints(cls)
        names = [f.name for f in fields(cls)]
        missing = [name for name in names if name not in recorded]
        unknown = sorted(set(recorded) - {*names, "fingerprint"})
        if missing or unknown:
            raise DeviceFileError(
                f"{path}: the device lacks {missing} and has unknown fields {unknown}; a device has {names}"
            )
        for name in names:
            value = recorded[name]
            # bool is an int to isinstance, but threads=true is no thread count.
            if isinstance(value, bool) or not isinstance(value, types[name]):
                raise DeviceFileError(f"{path}: device field {name!r} must be {types[name]}, got {value!r}")
        device = cls(**{name: recorded[name] for name in names})
        stored = recorded.get("fingerprint", device.fingerprint)
        if stored != device.fingerprint:
            raise DeviceFileError(
                f"{path}: the device records fingerprint {stored!r} but its fields give {device.fingerprint!r}; "
                "the file was edited by hand or written under another device rule: profile the device again"
            )
        return device


def read_device_record(directory: str | Path) -> dict[str, Any]:
    """Everything ``directory/device.json`` records (the device and what was written beside it),
    as written; :meth:`Device.read` checks the device. Raises :class:`DeviceFileError` naming the
    file when it is missing or not a JSON object."""
    path = Path(directory) / DEVICE_FILE
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeviceFileError(f"{path} does not exist: hwnas-profile writes it beside a profile's tables") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DeviceFileError(f"{path} is not valid JSON ({error})") from None
    if not isinstance(content, dict):
        raise DeviceFileError(f"{path} must hold a JSON object, got {type(content).__name__}")
    return content
