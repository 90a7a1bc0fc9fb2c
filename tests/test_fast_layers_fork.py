"""A process forked after a two-thread kernel call runs the kernels (on one thread) instead of hanging.

GNU libgomp's thread pool does not survive ``fork()``; the kernel modules
mark a forked child so that its kernels run on one thread (see
``src/convlab/_fast/omp_compat.h``).  Each check runs in a fresh Python
process with a timeout, so that a hang fails the test instead of stopping
the test run.
"""

import os
import signal
import subprocess
import sys

import pytest

# The parent runs every kernel module (convolution, pooling, batch norm +
# activation) on 2 threads, forks, and the child runs them again; the child's
# results must equal the parent's bit for bit (they do not depend on the
# thread count).  Exit status 0: equal; 3: different.
SCRIPT = r"""
import multiprocessing
import os
import sys

import numpy as np
from threadpoolctl import threadpool_limits

from convlab import fast_layers as fl


def step(_=None):
    rng = np.random.default_rng(0)
    # 2 * 16 * 32 * 288 * 256 = 7.5e7 flop per convolution: enough work for 2 threads
    x = rng.standard_normal((16, 32, 16, 16)).astype(np.float32)
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    out, cache = fl.conv_forward_fast(x, w, np.zeros(32, np.float32), {"stride": 1, "pad": 1})
    dx, dw, db = fl.conv_backward_fast(out, cache)
    pooled, pool_cache = fl.max_pool_forward_fast(out, {"pool_height": 3, "pool_width": 3, "stride": 1})
    dpool = fl.max_pool_backward_fast(pooled, pool_cache)
    bn_param = {"mode": "train"}
    y, bn_cache = fl.spatial_batchnorm_act_forward_fast(out, np.ones(32), np.zeros(32), bn_param)
    dy = fl.spatial_batchnorm_act_backward_fast(y, bn_cache)[0]
    return [a.tobytes() for a in (out, dx, dw, db, pooled, dpool, y, dy)]


with threadpool_limits(limits=2, user_api="openmp"):
    parent = step()
    if sys.argv[1] == "os.fork":
        pid = os.fork()
        if pid == 0:
            os._exit(0 if step() == parent else 3)
        _, status = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
    with multiprocessing.get_context("fork").Pool(1) as pool:
        child = pool.apply(step)
    sys.exit(0 if child == parent else 3)
"""

# Seconds: the work takes well under one on an idle machine; a hang is forever.
TIMEOUT = 120


@pytest.mark.parametrize("how", ["os.fork", "multiprocessing-fork"])
def test_a_forked_child_runs_the_kernels_after_a_two_thread_call(how):
    # A session of its own, so that a hung grandchild can be killed with its parent.
    process = subprocess.Popen([sys.executable, "-c", SCRIPT, how], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, stderr = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"the child forked with {how} hung in a kernel (no answer in {TIMEOUT} s)")
    assert process.returncode == 0, f"exit status {process.returncode}; stderr:\n{stderr}"
