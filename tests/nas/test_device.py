"""The device value and its file: written and read back by Device alone, in the profiles' format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nas import DEVICE_FILE, Device, DeviceFileError, read_device_record

#: A device.json written by hwnas-profile before Device owned the file (an NB201 profile of
#: this VM's CPU): the format every existing profile folder has.
PROFILE = Path(__file__).parent / "data" / "nb201_profile"
PROFILED = Device(
    name="cpu_onnxruntime_t1_b1_fp32",
    source="live",
    hardware="Intel(R) Xeon(R) Processor",
    runtime="onnxruntime 1.32.0",
    threads=1,
    batch_size=1,
    precision="fp32",
)


def test_write_then_read_round_trips_the_device_and_keeps_the_record(tmp_path: Path) -> None:
    device = Device(name="gpu_x", source="live", hardware="some gpu", runtime="torch 2", threads=None, batch_size=8)
    path = device.write(tmp_path, {"fingerprint": "abc", "where": tmp_path})
    assert path == tmp_path / DEVICE_FILE
    assert Device.read(tmp_path) == device and Device.read(tmp_path).fingerprint == device.fingerprint
    assert read_device_record(tmp_path) == {"fingerprint": "abc", "where": str(tmp_path), "device": device.to_dict()}
    assert [p.name for p in tmp_path.iterdir()] == [DEVICE_FILE]  # no temporary file left behind


def test_an_existing_profiles_device_file_is_read_and_rewritten_byte_for_byte(tmp_path: Path) -> None:
    assert Device.read(PROFILE) == PROFILED
    assert Device.read(PROFILE).fingerprint == read_device_record(PROFILE)["device"]["fingerprint"]
    record = {k: v for k, v in read_device_record(PROFILE).items() if k != "device"}
    written = PROFILED.write(tmp_path, record)
    assert written.read_bytes() == (PROFILE / DEVICE_FILE).read_bytes()


def test_a_record_may_not_hold_its_own_device(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must not hold a 'device' member"):
        PROFILED.write(tmp_path, {"device": {"name": "other"}})


def edited(change: dict[str, object]) -> str:
    recorded = json.loads((PROFILE / DEVICE_FILE).read_text())
    recorded["device"] = {k: v for k, v in {**recorded["device"], **change}.items() if v is not None}
    return json.dumps(recorded)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "does not exist"),
        ('{"device": {"name": "x"', "is not valid JSON"),
        ("[1, 2]", "must hold a JSON object, got list"),
        ('{"fingerprint": "abc"}', "has no 'device' object"),
        (edited({"threads": None}), r"the device lacks \['threads'\]"),
        (edited({"cores": 4}), r"unknown fields \['cores'\]"),
        (edited({"threads": "1"}), "device field 'threads' must be int | None, got '1'"),
        (edited({"batch_size": True}), "device field 'batch_size' must be <class 'int'>, got True"),
        (edited({"threads": 2}), "records fingerprint 'f1c4f08f8b392224' but its fields give"),
    ],
)
def test_a_bad_device_file_is_refused_naming_the_file(tmp_path: Path, text: str | None, message: str) -> None:
    if text is not None:
        (tmp_path / DEVICE_FILE).write_text(text)
    with pytest.raises(DeviceFileError, match=message) as refused:
        Device.read(tmp_path)
    assert str(tmp_path / DEVICE_FILE) in str(refused.value)
