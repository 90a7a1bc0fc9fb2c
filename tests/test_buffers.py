"""The buffer cache: large freed arrays handed out again inside ``reuse_buffers()``.

It changes only where NumPy arrays get their memory, so the tests check
that it is used exactly where it should be, that every block it hands out is
a valid, aligned, correctly sized (and, for ``np.zeros``, zeroed) buffer,
that it holds no more than its limit, and that a model computes the same
bits with it as without.
"""

import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from numpy._core.multiarray import get_handler_name

from convlab import fast_layers
from convlab.classifiers.airbench_convnet import ConvNet

LARGE = 1 << 20   # bytes: cached
SMALL = 1 << 12   # bytes: never cached


@pytest.fixture(autouse=True)
def empty_cache():
    fast_layers.release_buffers()
    limit = fast_layers.buffer_cache_stats()["limit"]
    yield
    fast_layers.set_buffer_cache_limit(limit)
    fast_layers.release_buffers()


def _address(a):
    return a.__array_interface__["data"][0]


def test_the_cache_allocates_only_inside_the_block():
    outside = np.empty(LARGE, np.uint8)
    with fast_layers.reuse_buffers():
        inside = np.empty(LARGE, np.uint8)
        assert get_handler_name() == "convlab_buffer_cache"
        with fast_layers.reuse_buffers():        # nested
            assert get_handler_name() == "convlab_buffer_cache"
        assert get_handler_name() == "convlab_buffer_cache"
    assert get_handler_name() == "default_allocator"
    assert get_handler_name(inside) == "convlab_buffer_cache"
    assert get_handler_name(outside) == "default_allocator"


def test_a_freed_large_buffer_is_handed_out_again():
    with fast_layers.reuse_buffers():
        a = np.empty(LARGE, np.uint8)
        where = _address(a)
        del a
        before = fast_layers.buffer_cache_stats()
        assert before["cached_blocks"] == 1 and before["cached_bytes"] >= LARGE
        b = np.empty(LARGE - 100, np.uint8)            # a little smaller: still fits
        after = fast_layers.buffer_cache_stats()
    assert _address(b) == where
    assert after["hits"] == before["hits"] + 1 and after["cached_blocks"] == 0


def test_a_much_smaller_or_larger_request_gets_a_fresh_buffer():
    with fast_layers.reuse_buffers():
        a = np.empty(LARGE, np.uint8)
        where = _address(a)
        del a
        smaller = np.empty(LARGE // 2, np.uint8)       # would waste half the block
        larger = np.empty(LARGE + 4096, np.uint8)      # does not fit
        assert where not in (_address(smaller), _address(larger))
        assert fast_layers.buffer_cache_stats()["cached_blocks"] == 1


def test_small_buffers_are_never_cached():
    with fast_layers.reuse_buffers():
        for _ in range(10):
            a = np.ones(SMALL, np.uint8)
            del a
    assert fast_layers.buffer_cache_stats()["cached_blocks"] == 0


@pytest.mark.parametrize("nbytes", [0, 1, 63, 4096, LARGE - 1, LARGE, 3 * LARGE + 7])
def test_every_buffer_is_64_byte_aligned_and_usable(nbytes):
    with fast_layers.reuse_buffers():
        for _ in range(2):                              # fresh, then from the cache
            a = np.empty(nbytes, np.uint8)
            assert _address(a) % 64 == 0
            a[:] = 7
            assert np.all(a == 7)
            del a


def test_np_zeros_is_zero_in_a_reused_buffer():
    with fast_layers.reuse_buffers():
        dirty = np.full(LARGE // 8, np.nan)
        where = _address(dirty)
        del dirty
        z = np.zeros(LARGE // 8)
        assert _address(z) == where
        assert not z.any()


def test_resize_keeps_the_data_when_the_buffer_moves():
    with fast_layers.reuse_buffers():
        a = np.arange(LARGE // 8, dtype=np.float64)
        a.resize(LARGE // 2, refcheck=False)          # 4x larger: a new block
        np.testing.assert_array_equal(a[:LARGE // 8], np.arange(LARGE // 8))
        assert not a[LARGE // 8:].any()                 # resize zero-fills the new part
        a.resize(LARGE // 16, refcheck=False)         # much smaller: a smaller block
        np.testing.assert_array_equal(a, np.arange(LARGE // 16))


def test_arrays_outlive_the_block_and_return_their_memory_when_freed():
    with fast_layers.reuse_buffers():
        a = np.arange(LARGE // 8, dtype=np.float64)
    np.testing.assert_array_equal(a[-3:], [LARGE // 8 - 3, LARGE // 8 - 2, LARGE // 8 - 1])
    assert fast_layers.buffer_cache_stats()["cached_blocks"] == 0
    del a
    assert fast_layers.buffer_cache_stats()["cached_blocks"] == 1


def test_the_cache_holds_no_more_than_its_limit():
    fast_layers.set_buffer_cache_limit(3 * LARGE)
    with fast_layers.reuse_buffers():
        arrays = [np.empty(LARGE, np.uint8) for _ in range(6)]
        del arrays
    stats = fast_layers.buffer_cache_stats()
    assert stats["cached_bytes"] <= 3 * LARGE and stats["cached_blocks"] == 2
    fast_layers.set_buffer_cache_limit(LARGE // 2)      # below what it holds: frees it now
    assert fast_layers.buffer_cache_stats()["cached_bytes"] == 0
    fast_layers.set_buffer_cache_limit(0)
    with fast_layers.reuse_buffers():
        a = np.empty(LARGE, np.uint8)
        del a
    assert fast_layers.buffer_cache_stats()["cached_blocks"] == 0


@pytest.mark.parametrize("bad", [-1, 1.5, "1GB", None, True])
def test_a_bad_limit_is_refused_naming_the_argument(bad):
    with pytest.raises(ValueError, match="nbytes"):
        fast_layers.set_buffer_cache_limit(bad)


def test_release_frees_everything_and_says_how_much():
    with fast_layers.reuse_buffers():
        arrays = [np.empty(LARGE, np.uint8) for _ in range(3)]
        del arrays
    held = fast_layers.buffer_cache_stats()["cached_bytes"]
    assert held >= 3 * LARGE
    assert fast_layers.release_buffers() == held
    assert fast_layers.buffer_cache_stats()["cached_bytes"] == 0


def test_threads_share_the_cache_safely():
    errors = []

    def work(seed):
        try:
            with fast_layers.reuse_buffers():
                rng = np.random.default_rng(seed)
                for _ in range(200):
                    n = int(rng.integers(LARGE // 8, 2 * LARGE // 8))
                    a = np.full(n, float(seed))
                    if not np.all(a == seed):
                        errors.append(f"thread {seed}: wrong values")
                    del a
        except Exception as error:  # noqa: BLE001 -- reported below
            errors.append(repr(error))

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_can_use_the_cache():
    with fast_layers.reuse_buffers():
        a = np.empty(LARGE, np.uint8)
        del a
        pid = os.fork()
        if pid == 0:                                    # the child
            ok = False
            try:
                b = np.ones(LARGE, np.uint8)
                del b
                c = np.ones(LARGE, np.uint8)
                ok = int(c.sum()) == LARGE
            finally:
                os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_model_computes_the_same_bits_with_the_cache():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((16, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    model = ConvNet(widths=(8, 16, 16), seed=1)
    before = fast_layers.buffer_cache_stats()
    first = model.loss(X, y)                             # through reuse_buffers: fresh blocks
    second = model.loss(X, y)                            # the first call's blocks again
    after = fast_layers.buffer_cache_stats()
    assert after["misses"] > before["misses"] and after["hits"] > before["hits"]
    plain = model._loss(X, y)                            # the default allocator
    for loss, grads in (second, plain):
        assert loss == first[0]
        for name, g in first[1].items():
            np.testing.assert_array_equal(grads[name], g, err_msg=name)
    scores = model.loss(X)
    np.testing.assert_array_equal(scores, model._loss(X, None))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs RLIMIT_AS (Linux)")
def test_when_memory_runs_out_the_cache_gives_its_blocks_back_first():
    """A process near its memory limit: the cached blocks are freed before a request fails."""
    code = textwrap.dedent("""
        import resource
        import numpy as np
        from convlab import fast_layers
        MB = 1 << 20
        with fast_layers.reuse_buffers():
            held = [np.ones(64 * MB, np.uint8) for _ in range(4)]     # 256 MB
            del held                                                 # now cached
            with open("/proc/self/status") as f:
                vm = next(int(l.split()[1]) for l in f if l.startswith("VmSize")) * 1024
            resource.setrlimit(resource.RLIMIT_AS, (vm + 128 * MB, vm + 128 * MB))
            big = np.ones(300 * MB, np.uint8)                        # fits only without the cache
            assert int(big[::MB].sum()) == 300
            assert fast_layers.buffer_cache_stats()["cached_bytes"] == 0
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
