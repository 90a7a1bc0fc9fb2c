"""The grading key and the HMAC over grade records (convlab.instructor.integrity)."""

import json
import os
import stat

import pytest

from convlab.instructor.integrity import KEY_BYTES, IntegrityError, default_key_path, load_key, sign, verify

RECORD = {"submission": "alice", "student": None, "score": 17.0, "max_score": 20.0, "fingerprint": "ab" * 32,
          "grader": "0.1.0", "tests": [{"name": "conv.forward", "status": "fail", "points": 4, "max_points": 5.0,
                                        "output": "naïve", "tests": []}]}


def test_the_key_is_made_on_first_use_private_in_private_folders_and_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    path = tmp_path / "config" / "convlab" / "grading.key"
    assert default_key_path() == path
    key = load_key()
    assert len(key) == KEY_BYTES and path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "config").stat().st_mode) == 0o700
    assert load_key() == key
    assert load_key(tmp_path / "other.key") != key  # 32 fresh random bytes
    assert [p.name for p in path.parent.iterdir()] == ["grading.key"]  # no temporary file left


def test_a_relative_xdg_config_home_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/config")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_key_path() == tmp_path / ".config" / "convlab" / "grading.key"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_a_key_others_may_read_is_refused_naming_the_file(tmp_path, mode):
    path = tmp_path / "grading.key"
    path.write_bytes(os.urandom(KEY_BYTES))
    path.chmod(mode)
    with pytest.raises(IntegrityError, match=f"{path}.*chmod 600"):
        load_key(path)


@pytest.mark.parametrize("size", [0, 31, 33])
def test_a_key_of_the_wrong_length_is_refused_naming_the_file(tmp_path, size):
    path = tmp_path / "grading.key"
    path.write_bytes(b"k" * size)
    path.chmod(0o600)
    with pytest.raises(IntegrityError, match=f"{path} holds {size}"):
        load_key(path)


def test_a_key_behind_a_symbolic_link_or_a_folder_is_refused(tmp_path):
    target = tmp_path / "real.key"
    target.write_bytes(os.urandom(KEY_BYTES))
    target.chmod(0o600)
    (tmp_path / "link.key").symlink_to(target)
    with pytest.raises(IntegrityError, match="link.key"):
        load_key(tmp_path / "link.key")
    (tmp_path / "folder.key").mkdir(mode=0o700)
    with pytest.raises(IntegrityError, match="folder.key"):
        load_key(tmp_path / "folder.key")


def test_a_signed_record_verifies_after_a_round_trip_through_a_json_file(tmp_path):
    key = os.urandom(KEY_BYTES)
    record = dict(RECORD, hmac=sign(key, RECORD))
    (tmp_path / "alice.json").write_text(json.dumps(record, indent=2))
    assert verify(key, json.loads((tmp_path / "alice.json").read_text()))
    assert sign(key, record) == sign(key, RECORD)  # the "hmac" field itself is not signed


def test_any_change_another_key_or_a_missing_or_odd_hmac_fails_verification():
    key = os.urandom(KEY_BYTES)
    signed = dict(RECORD, hmac=sign(key, RECORD))
    assert verify(key, signed)
    assert not verify(key, dict(signed, score=20.0))
    assert not verify(key, dict(signed, tests=[dict(signed["tests"][0], status="pass")]))
    assert not verify(key, dict(signed, extra=1))
    assert not verify(os.urandom(KEY_BYTES), signed)
    assert not verify(key, RECORD)
    assert not verify(key, dict(signed, hmac="é" * 64))
    assert not verify(key, dict(signed, hmac=None))
    assert not verify(key, [signed])
