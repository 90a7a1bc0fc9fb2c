"""What may cross between the grader's tests and a submission's worker, and what is refused."""

import os
import pickle
import struct
import time

import numpy as np
import pytest

from convlab.instructor import wire


def round_trip(value, keep=None, resolve=None):
    data = wire.pack({"value": value}, keep)
    size, header = struct.unpack("<II", data[:8])
    assert size == len(data) - 8
    return wire.unpack(data[8:], header, resolve)["value"]


def test_plain_data_and_arrays_cross_unchanged():
    value = {"x": np.arange(6.0).reshape(2, 3), "mode": "train", "eps": 1e-5, "n": 3, "flag": True, "none": None,
             "nan": float("nan"), "inf": -float("inf"), "big": 2**70, "scalar": np.float32(1.5),
             "dtype": np.dtype(np.float32), "type": np.float64, "nested": [(1, 2.5), {"k": np.zeros(0, np.int8)}],
             7: "int key"}
    back = round_trip(value)
    assert back.keys() == value.keys()
    assert np.array_equal(back["x"], value["x"]) and back["x"].dtype == np.float64
    assert back["scalar"] == np.float32(1.5) and isinstance(back["scalar"], np.float32)
    assert back["dtype"] == np.dtype(np.float32) and back["type"] is np.float64
    assert np.isnan(back["nan"]) and back["inf"] == -float("inf") and back["big"] == 2**70
    assert back["nested"][0] == (1, 2.5) and isinstance(back["nested"][0], tuple)
    assert back[7] == "int key" and back["flag"] is True and back["none"] is None


@pytest.mark.parametrize("value", [np.array([object()], dtype=object), object(), {(1, 2): 3}, np.array(["a"]),
                                   lambda: 0, 1 + 2j])
def test_what_is_not_plain_data_is_refused_on_the_trusted_side(value):
    with pytest.raises(wire.WireError):
        wire.pack({"value": value})


def test_the_worker_keeps_what_it_cannot_send_as_a_handle():
    kept = []

    def keep(value):
        kept.append(value)
        return wire.Handle(1, len(kept))

    cache = object()
    back = round_trip((np.ones(2), cache), keep=keep)
    assert isinstance(back[1], wire.Handle) and kept == [cache]
    assert round_trip(back, resolve=lambda h: kept[h.key - 1])[1] is cache


def test_a_pickle_or_an_object_array_is_never_loaded():
    """A hostile worker may describe an object array, whose bytes would be pointers or a pickle: refused, not run."""
    raw = pickle.dumps([1, 2])
    for dtype in ("O", "|O", "V8", "S3", "<U2", "[('a', '<f8')]"):
        header = b'{"value": {"array": 0}, "arrays": [["%s", [1]]]}' % dtype.encode()
        with pytest.raises(wire.WireError):
            wire.unpack(header + raw, len(header))


def test_array_bytes_must_match_their_shape():
    header = b'{"value": {"array": 0}, "arrays": [["<f8", [2, 3]]]}'
    with pytest.raises(wire.WireError, match="missing"):
        wire.unpack(header + b"\0" * 40, len(header))
    with pytest.raises(wire.WireError, match="left over"):
        wire.unpack(header + b"\0" * 56, len(header))
    assert wire.unpack(header + b"\0" * 48, len(header)).shape == (2, 3)


@pytest.mark.parametrize("header", [b"not json", b'{"value": 1}', b'{"value": {"array": 0}, "arrays": []}',
                                    b'{"value": {"exec": "x"}, "arrays": []}', b'{"value": {"dtype": "O"}, "arrays": []}',
                                    b'{"value": 1, "arrays": [["<f8", [-1]]]}',
                                    b'{"value": ' + b'{"list": [' * 100 + b']}' * 100 + b', "arrays": []}'])
def test_malformed_messages_are_refused(header):
    with pytest.raises(wire.WireError):
        wire.unpack(header, len(header))


def test_size_limits(monkeypatch):
    monkeypatch.setattr(wire, "MAX_MESSAGE", 1000)
    with pytest.raises(wire.WireError, match="limit"):
        wire.pack({"value": np.zeros(1000)})
    read, write = os.pipe()
    try:
        os.write(write, struct.pack("<II", 10**9, 10))
        with pytest.raises(wire.WireError, match="limit"):
            wire.receive(read)
    finally:
        os.close(read)
        os.close(write)
    deep = []
    for _ in range(wire.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(wire.WireError, match="deeper"):
        wire.pack({"value": deep})


def test_send_receive_over_a_pipe_and_the_deadline():
    read, write = os.pipe()
    try:
        wire.send(write, {"x": np.arange(3)})
        assert np.array_equal(wire.receive(read, deadline=time.monotonic() + 5)["x"], np.arange(3))
        os.write(write, struct.pack("<II", 100, 10) + b"partial")
        with pytest.raises(wire.Deadline):
            wire.receive(read, deadline=time.monotonic() + 0.2)
    finally:
        os.close(write)
    with pytest.raises(wire.Closed):
        wire.receive(read, deadline=time.monotonic() + 5)
    os.close(read)


def test_zero_dimensional_and_non_contiguous_arrays_keep_their_shape():
    back = round_trip([np.array(2.5), np.arange(12.0).reshape(3, 4).T, np.asfortranarray(np.ones((2, 3)))])
    assert back[0].shape == () and back[1].shape == (4, 3) and np.array_equal(back[1], np.arange(12.0).reshape(3, 4).T)
