"""``convlab.submit collect``'s submission.json, and the grader reading it back without trusting it."""

import hashlib
import os
import json
import zipfile
from datetime import datetime

import pytest

from convlab.instructor.gradebook import read_identity
from convlab.submit import __main__ as submit

LAYERS = "def conv_forward_naive(x):\n    return x\n"


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A student's tree with one assigned file; collect pointed at it."""
    root = tmp_path / "tree"
    (root / "src/convlab").mkdir(parents=True)
    (root / "src/convlab/layers.py").write_text(LAYERS)
    monkeypatch.setattr(submit, "assignment", lambda: {"exercises": {}, "files": ["src/convlab/layers.py"]})
    monkeypatch.setattr(submit, "_repository", lambda: root)
    for variable in ("CONVLAB_STUDENT_ID", "CONVLAB_STUDENT_NAME"):
        monkeypatch.delenv(variable, raising=False)
    return root


def identity_in(path):
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["src/convlab/layers.py", "submission.json"]
        assert archive.read("src/convlab/layers.py").decode() == LAYERS
        return json.loads(archive.read("submission.json"))


def test_collect_records_id_name_time_and_file_hashes(tree, tmp_path, capsys):
    out = tmp_path / "submission.zip"
    assert submit.main(["collect", "--out", str(out), "--student-id", " s123 ", "--name", "Alice A."]) == 0
    written = identity_in(out)
    assert written["id"] == "s123" and written["name"] == "Alice A."
    assert written["files"] == {"src/convlab/layers.py": hashlib.sha256(LAYERS.encode()).hexdigest()}
    submitted = datetime.fromisoformat(written["submitted"])
    assert submitted.utcoffset().total_seconds() == 0 and written["submitted"].endswith("+00:00")
    assert "handed in as id s123, name Alice A." in capsys.readouterr().out
    assert read_identity(out) == ({"id": "s123", "name": "Alice A.", "submitted": written["submitted"]}, None)


def test_collect_takes_the_environment_as_default_and_omits_what_is_not_given(tree, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CONVLAB_STUDENT_ID", "s7")
    assert submit.main(["collect", "--out", str(tmp_path / "a.zip")]) == 0
    assert identity_in(tmp_path / "a.zip")["id"] == "s7" and "name" not in identity_in(tmp_path / "a.zip")
    assert submit.main(["collect", "--out", str(tmp_path / "b.zip"), "--student-id", "s8"]) == 0
    assert identity_in(tmp_path / "b.zip")["id"] == "s8"
    monkeypatch.delenv("CONVLAB_STUDENT_ID")
    capsys.readouterr()
    assert submit.main(["collect", "--out", str(tmp_path / "c.zip")]) == 0
    assert sorted(identity_in(tmp_path / "c.zip")) == ["files", "submitted"]
    assert capsys.readouterr().out == "wrote {} with 1 file: src/convlab/layers.py\n".format(tmp_path / "c.zip")
    assert read_identity(tmp_path / "c.zip")[0]["id"] is None


@pytest.mark.parametrize("argv, variable, named", [
    (["--student-id", "s1\ns2"], None, "--student-id holds a control character"),
    (["--name", "x" * 201], None, "--name has 201 characters"),
    (["--student-id", "  "], None, "--student-id is empty"),
    ([], "a\tb", "CONVLAB_STUDENT_ID holds a control character"),
])
def test_collect_refuses_a_malformed_id_or_name_in_one_line_and_writes_no_zip(
        tree, tmp_path, monkeypatch, capsys, argv, variable, named):
    if variable is not None:
        monkeypatch.setenv("CONVLAB_STUDENT_ID", variable)
    out = tmp_path / "submission.zip"
    assert submit.main(["collect", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {named}") and err.count("\n") == 1
    assert not out.exists()


def folder_with(tmp_path, content):
    folder = tmp_path / "submission"
    folder.mkdir()
    (folder / "submission.json").write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    return folder


def test_read_identity_from_a_folder_normalises_the_time_and_ignores_other_fields(tmp_path):
    folder = folder_with(tmp_path, {"id": "s1", "submitted": "2026-12-01T23:30:00+01:00",
                                    "files": {"src/convlab/layers.py": "not checked"}, "score": 80})
    assert read_identity(folder) == ({"id": "s1", "name": None, "submitted": "2026-12-01T22:30:00+00:00"}, None)


@pytest.mark.parametrize("content, reason", [
    (b"{not json", "not UTF-8 JSON"),
    (b"\xff\xfe{}", "not UTF-8 JSON"),
    (b"[" * 60000, "not UTF-8 JSON"),
    (b" " * 70000 + b"{}", "at most 65536"),
    (["s1"], "holds a list, not an object"),
    ({"id": 123}, '"id" in submission.json must be a string'),
    ({"id": "s" * 65}, '"id" in submission.json has 65 characters'),
    ({"name": "Alice\r\nid: s2"}, '"name" in submission.json holds a control character'),
    ({"id": "s1", "submitted": "2026-12-01T10:00:00"}, "has no time zone"),
    ({"id": "s1", "submitted": "yesterday"}, "is not an ISO 8601 time"),
    ({"id": "s1", "submitted": "9999-12-31T23:59:59-23:59"}, "out of range"),
])
def test_a_malformed_submission_json_is_ignored_with_a_reason(tmp_path, content, reason):
    identity, problem = read_identity(folder_with(tmp_path, content))
    assert identity is None and reason in problem


def test_read_identity_ignores_links_missing_files_and_non_submissions(tmp_path):
    other = tmp_path / "classmate.json"
    other.write_text(json.dumps({"id": "s2", "name": "Bob B."}))
    folder = tmp_path / "submission"
    folder.mkdir()
    assert read_identity(folder) == (None, "there is no submission.json")
    (folder / "submission.json").symlink_to(other)
    identity, problem = read_identity(folder)
    assert identity is None and "not a regular file" in problem
    with zipfile.ZipFile(tmp_path / "bare.zip", "w") as archive:
        archive.writestr("src/convlab/layers.py", LAYERS)
    assert read_identity(tmp_path / "bare.zip") == (None, "the zip has no submission.json")
    (tmp_path / "notes.txt").write_text("hello")
    assert read_identity(tmp_path / "notes.txt") == (None, "notes.txt is neither a folder nor a zip file")


def test_read_identity_never_waits_on_a_pipe_nor_raises_on_a_corrupt_zip(tmp_path):
    folder = tmp_path / "submission"
    folder.mkdir()
    os.mkfifo(folder / "submission.json")
    identity, problem = read_identity(folder)
    assert identity is None and "not a regular file" in problem
    text = json.dumps({"id": "s1", "name": "Alice A." * 20}).encode()
    with zipfile.ZipFile(tmp_path / "corrupt.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("submission.json", text)
    data = bytearray((tmp_path / "corrupt.zip").read_bytes())
    start = data.index(b"submission.json") + len("submission.json")  # the local header's name, then the data
    data[start + 4:start + 24] = b"\xff" * 20
    (tmp_path / "corrupt.zip").write_bytes(bytes(data))
    identity, problem = read_identity(tmp_path / "corrupt.zip")
    assert identity is None and "cannot be read" in problem
