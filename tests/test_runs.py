"""The run record (xpnet/runs.py): the source written by source_record, and verified_file,
which finds a table by its recorded path or a moved copy and checks its SHA-256."""

from __future__ import annotations

import hashlib

import pytest

from xpnet.runs import RunRecord, RunRecordError, source_record, verified_file


def test_a_table_is_recorded_by_absolute_path_and_digest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.csv").write_text("a,label\n1,0\n")
    record = source_record(data="t.csv", target="label", test_fraction=0.2, id="a",
                           drop=["b"])
    assert record["data"] == str(tmp_path / "t.csv") and record["kind"] == "table"
    assert record["data_sha256"] == hashlib.sha256(b"a,label\n1,0\n").hexdigest()
    assert record["drop"] == ["b"] and record["test_data"] is None
    assert source_record(dataset="kmnist") == {"dataset": "kmnist", "data": None,
                                               "task": "classification", "kind": "image"}


def test_verified_file(tmp_path):
    (tmp_path / "t.csv").write_text("x\n")
    digest = hashlib.sha256(b"x\n").hexdigest()
    assert verified_file("r.npz", "--data", str(tmp_path / "t.csv"), digest) == \
        str(tmp_path / "t.csv")
    (tmp_path / "copy.csv").write_text("x\n")
    assert verified_file("r.npz", "--data", "gone.csv", digest,
                         str(tmp_path / "copy.csv")) == str(tmp_path / "copy.csv")
    with pytest.raises(RunRecordError, match="gone.csv, which does not exist; if it moved, "
                                             "pass --data NEW_PATH"):
        verified_file("r.npz", "--data", str(tmp_path / "gone.csv"), digest)
    (tmp_path / "t.csv").write_text("y\n")
    with pytest.raises(RunRecordError, match="has changed since the run in r.npz"):
        verified_file("r.npz", "--data", str(tmp_path / "t.csv"), digest)


def test_a_state_without_a_trainer_is_not_a_run():
    with pytest.raises(RunRecordError, match="holds a model but no run state"):
        RunRecord.read("m.npz", None, None, {"json": {"model": {}}, "arrays": {}})
    with pytest.raises(RunRecordError, match="holds no record of its training data"):
        RunRecord.read("m.npz", None, None, {"json": {"trainer": {}}, "arrays": {}})
