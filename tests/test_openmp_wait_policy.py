"""The kernels' OpenMP threads sleep when idle, unless the user chose otherwise.

``convlab._fast`` sets ``OMP_WAIT_POLICY=PASSIVE`` before its first kernel
module loads the OpenMP runtime (spinning idle threads slow a training step
1.5 to 2 times on a busy machine).  ``OMP_DISPLAY_ENV`` makes the runtime
print the settings it read when it was loaded, which is what is checked.
"""

import os
import re
import subprocess
import sys

import pytest

from convlab import fast_layers

CODE = "import convlab.fast_layers, os; print(os.environ['OMP_WAIT_POLICY'])"


def _run(extra_env):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env.update(extra_env, OMP_DISPLAY_ENV="TRUE")
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    shown = re.findall(r"OMP_WAIT_POLICY\s*=\s*'?(\w+)'?", done.stderr)
    return done.stdout.strip(), shown


@pytest.mark.skipif(not fast_layers.build_info()["openmp"], reason="the kernels were built without OpenMP")
@pytest.mark.parametrize("user, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE"), ("passive", "passive")])
def test_the_runtime_reads_the_wait_policy(user, expected):
    stdout, shown = _run({} if user is None else {"OMP_WAIT_POLICY": user})
    assert stdout == expected                       # the user's choice is kept
    if not shown:
        pytest.skip("this OpenMP runtime does not print its settings (OMP_DISPLAY_ENV)")
    assert shown[0].upper() == expected.upper()     # what the runtime itself read
