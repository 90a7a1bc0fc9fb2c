"""Student feedback, rosters, due times and summary.csv (convlab.instructor.gradebook)."""

import csv
import json
from datetime import datetime, timezone

import pytest

from convlab.runs import files as run_files
from convlab.instructor.gradebook import (
    GradebookError,
    parse_due,
    read_roster,
    scrub,
    student_feedback,
    write_summary,
)

TOKEN = "canvas-7f3a9c1e5b"
ENVIRON = {"CANVAS_API_TOKEN": TOKEN, "LANG": "C.UTF-8"}
HIDDEN_SOURCE = "def test_conv_forward_secret_shapes():"


def graded(name, status, points, max_points, visibility, output=""):
    """One test's entry in a grade record."""
    return {"name": name, "status": status, "points": points, "max_points": max_points,
            "visibility": visibility, "output": output}


def make_record(submission="alice", student=None, score=4.0):
    """A record with one exercise: two visible tests, one after the due date, one hidden (and one without visibility)."""
    tests = [
        graded("tests/test_layers.py::test_conv_forward[case0]", "pass", 1.0, 1.0, "visible", "all good"),
        graded("tests/test_layers.py::test_conv_forward[case1]", "fail", 0.0, 1.0, "visible",
             f"File \"/home/alice/course/src/convlab/layers.py\", line 12\nAssertionError token={TOKEN}\n"
             "see /tmp/grades/alice/conv.forward/convlab.layers.py:40"),
        graded("hidden/test_hidden_layers.py::test_conv_forward_strides", "fail", 0.0, 2.0, "after_due_date",
             f"    {HIDDEN_SOURCE}\n>       assert out.shape == (2, 3)"),
        graded("hidden/test_hidden_layers.py::test_conv_forward_secret", "pass", 3.0, 3.0, "hidden",
             f"{HIDDEN_SOURCE}\n/work/main/tests/hidden/test_hidden_layers.py"),
        {"name": "hidden/test_hidden_layers.py::test_unlabelled", "status": "fail", "points": 0.0, "max_points": 1.0,
         "output": "unlabelled secret output"},
    ]
    exercise = {"name": "conv.forward", "status": "fail", "points": 4.0, "max_points": 8.0, "tests": tests,
                "output": f"everything, with {HIDDEN_SOURCE}"}
    return {"submission": submission, "student": student, "score": score, "max_score": 8.0, "fingerprint": "f" * 64,
            "grader": "0.1.0", "tests": [exercise]}


def test_scrub_replaces_environment_values_and_absolute_paths():
    text = (f"token {TOKEN} lang C.UTF-8 at /home/alice/course/src/convlab/layers.py:12 and /tmp/grades/ "
            f"'/work/main/tests/hidden/test_hidden_layers.py' /root/.config/convlab/grading.key "
            f"/usr/lib/python3/site-packages/numpy/core.py; 4/5 points, x /= 2, a/b")
    assert scrub(text, ENVIRON) == ("token $CANVAS_API_TOKEN lang C.UTF-8 at layers.py:12 and grades "
                                    "'test_hidden_layers.py' grading.key core.py; 4/5 points, x /= 2, a/b")


def test_feedback_lists_visible_and_after_due_date_tests_and_only_counts_hidden_ones():
    feedback = student_feedback(make_record(), environ=ENVIRON)
    assert feedback["score"] == 4.0 and feedback["max_score"] == 8.0
    [exercise] = feedback["tests"]
    assert (exercise["name"], exercise["status"], exercise["points"], exercise["max_points"]) == (
        "conv.forward", "fail", 4.0, 8.0)
    assert [(t["name"].split("::")[1], t["visibility"], t["status"], t["points"]) for t in exercise["tests"]] == [
        ("test_conv_forward[case0]", "visible", "pass", 1.0), ("test_conv_forward[case1]", "visible", "fail", 0.0),
        ("test_conv_forward_strides", "after_due_date", "fail", 0.0)]
    outputs = [t["output"] for t in exercise["tests"]]
    assert outputs[0] == "all good"
    assert outputs[1] == ('File "layers.py", line 12\nAssertionError token=$CANVAS_API_TOKEN\n'
                          "see convlab.layers.py:40")
    assert outputs[2] == ""  # not released yet
    assert "3/4  hidden tests" in exercise["output"]  # counted, not listed
    shown = json.dumps(feedback)
    for secret in (TOKEN, HIDDEN_SOURCE, "test_conv_forward_secret", "test_unlabelled", "unlabelled secret",
                   "/home/", "/tmp/", "/work/", "everything, with"):
        assert secret not in shown, secret


def test_released_feedback_shows_after_due_date_outputs_but_never_hidden_ones():
    feedback = student_feedback(make_record(), released=True, environ=ENVIRON)
    [exercise] = feedback["tests"]
    assert exercise["tests"][2]["output"].startswith(f"    {HIDDEN_SOURCE}")
    assert "test_conv_forward_strides" in exercise["output"]
    shown = json.dumps(feedback)
    assert "::test_conv_forward_secret" not in shown and "/work/" not in shown and "unlabelled" not in shown


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_a_roster_is_read_with_optional_columns_a_bom_and_other_columns(tmp_path):
    roster = write(tmp_path / "roster.csv", "\ufeffName, ID ,Submission,section\nAlice A.,s1,alice,2\n\n"
                                            "Bob B.,s2,bob.zip,1\n")
    assert read_roster(roster) == [{"id": "s1", "submission": "alice", "name": "Alice A.", "email": ""},
                                   {"id": "s2", "submission": "bob.zip", "name": "Bob B.", "email": ""}]


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("name,submission\nAlice,alice\n", "line 1: no column id in the header"),
    ("id,name\ns1,Alice\n", "line 1: no column submission"),
    ("id,submission\ns1,alice\ns2,bob\ns1,carol\n", "line 4: id 's1' is already on line 2"),
    ("id,submission\ns1,alice\ns2,alice\n", "line 3: submission 'alice' is already on line 2"),
    ("id,submission\ns1,alice\n,bob\n", "line 3: the id is empty"),
])
def test_a_bad_roster_is_refused_naming_the_file_and_line(tmp_path, text, message):
    roster = write(tmp_path / "roster.csv", text)
    with pytest.raises(GradebookError, match=f"roster {roster}.*{message}"):
        read_roster(roster)


def test_a_missing_roster_is_refused_naming_it(tmp_path):
    with pytest.raises(GradebookError, match="nowhere.csv"):
        read_roster(tmp_path / "nowhere.csv")


def test_due_needs_iso_8601_with_a_time_zone():
    assert parse_due("2026-12-01T23:59+01:00") == datetime(2026, 12, 1, 22, 59, tzinfo=timezone.utc)
    assert parse_due("2026-12-01T22:59:00Z") == datetime(2026, 12, 1, 22, 59, tzinfo=timezone.utc)
    for text in ("2026-12-01T23:59", "2026-12-01", "tomorrow", "2026-13-01T00:00+00:00"):
        with pytest.raises(GradebookError, match="--due"):
            parse_due(text)


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def student(id_, name, submitted):
    return {"id": id_, "name": name, "submitted": submitted}


def test_summary_follows_the_roster_with_late_hours_and_missing_students(tmp_path):
    roster = read_roster(write(tmp_path / "roster.csv", "id,submission,name\ns1,alice,Alice A.\ns2,bob,\n"
                                                         "s3,carol,Carol C.\n"))
    records = {
        # alice's submission.json claims another id and name: the roster wins
        "alice": make_record("alice", student("s999", "Mallory", "2026-12-02T01:30:00+00:00")),
        "bob": make_record("bob", student("s2", "Bob B.", "2026-12-01T21:00:00+00:00"), score=8.0),
        "dave": make_record("dave", None),
    }
    due = parse_due("2026-12-01T23:00+01:00")
    problems = write_summary(records, tmp_path / "summary.csv", roster=roster, due=due)
    assert problems == ["submission dave is not on the roster"]
    rows = read_rows(tmp_path / "summary.csv")
    assert list(rows[0])[:7] == ["student_id", "name", "submission", "score", "max_score", "submitted", "late"]
    assert list(rows[0])[7:] == ["conv.forward points", "conv.forward status"]
    assert [(r["student_id"], r["name"], r["submission"], r["score"], r["max_score"], r["late"]) for r in rows] == [
        ("s1", "Alice A.", "alice", "4", "8", "3.5"),
        ("s2", "Bob B.", "bob", "8", "8", "0"),
        ("s3", "Carol C.", "carol", "0", "8", ""),
        ("dave", "", "dave", "4", "8", ""),
    ]
    assert [(r["conv.forward points"], r["conv.forward status"]) for r in rows] == [
        ("4", "fail"), ("4", "fail"), ("0", "missing"), ("4", "fail")]
    assert rows[0]["submitted"] == "2026-12-02T01:30:00+00:00"


def test_summary_without_a_roster_is_keyed_by_claimed_id_never_twice_and_defuses_formulas(tmp_path):
    records = [make_record("alice", student("s1", "Alice A.", None)),
               make_record("bob", student("s1", "=HYPERLINK(\"http://x\")", None)),
               make_record("carol", None)]
    problems = write_summary(records, tmp_path / "summary.csv")
    rows = read_rows(tmp_path / "summary.csv")
    assert [(r["student_id"], r["name"], r["submission"], r["late"]) for r in rows] == [
        ("alice", "Alice A.", "alice", ""), ("bob", "'=HYPERLINK(\"http://x\")", "bob", ""), ("carol", "", "carol", "")]
    assert problems == ["submission alice claims the student id 's1', which another row has: keyed by its "
                        "submission name instead",
                        "submission bob claims the student id 's1', which another row has: keyed by its "
                        "submission name instead"]


def test_a_summary_that_fails_while_writing_leaves_the_previous_one_whole(tmp_path, monkeypatch):
    summary = write(tmp_path / "summary.csv", "student_id,score\ns1,20\n")

    def broken_fsync(handle):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(run_files.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space left"):
        write_summary([make_record()], summary)
    assert summary.read_text() == "student_id,score\ns1,20\n"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.csv"]
    monkeypatch.undo()
    write_summary([make_record()], summary)
    assert read_rows(summary)[0]["student_id"] == "alice"
