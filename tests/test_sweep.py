"""Sweeps on Dask (convlab.sweep): planning, local and scaled-out runs, faults, resumption, tables.

Most tests train with a fake trainer (tests/_sweep_fake_trainer.py, named by
CONVLAB_SWEEP_TRAINER); one runs the real ``tiny`` recipe. Everything stays on
127.0.0.1.
"""

import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("distributed")

from convlab.sweep import Sweep, aggregate, format_table, parse_grid, parse_seeds, status  # noqa: E402
from convlab.sweep.plan import Trial, expand  # noqa: E402

FAKE = os.path.join(os.path.dirname(__file__), "_sweep_fake_trainer.py")
SIZES = dict(num_train=256, num_val=64, num_test=64)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """Use the fake trainer; returns a function reading its invocation log."""
    log = tmp_path / "invocations.jsonl"
    monkeypatch.setenv("CONVLAB_SWEEP_TRAINER", FAKE)
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.setenv("FAKE_SLEEP", "0.3")

    def invocations():
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]
    return invocations


def _sweep(out, **kwargs):
    kwargs.setdefault("grid", parse_grid(["activation=relu,gelu"]))
    kwargs.setdefault("seeds", [0, 1])
    return Sweep("tiny", out=str(out), epochs=1, progress=False, **SIZES, **kwargs)


def _alive(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return not any(line.startswith("State:") and "Z" in line.split()[1] for line in f)
    except FileNotFoundError:
        return False


# 1. Planning and aggregation -------------------------------------------------

def test_grid_and_seeds_expand_with_stable_ids_and_reproducible_samples():
    grid = parse_grid(["activation=relu,gelu", "widths=[8,16,16];[16,32,32]"])
    assert grid == [("activation", ["relu", "gelu"]),
                    ("widths", ["[8,16,16]", "[16,32,32]"])]
    assert parse_seeds("0-2,7") == [0, 1, 2, 7]
    trials = expand("quick", grid, [0, 1], ("--epochs", "3"), version="1.0")
    assert len(trials) == 8 and len({t.id for t in trials}) == 8
    assert trials[0].overrides == ["activation=relu", "widths=[8,16,16]"]
    again = expand("quick", list(reversed(grid)), [0, 1], ("--epochs", "3"), version="1.0")
    assert {t.id for t in again} == {t.id for t in trials}      # override order is irrelevant
    assert trials[0].id == Trial("quick", trials[0].point, 0, ("--epochs", "3"), "1.0").id
    assert trials[0].id != Trial("quick", trials[0].point, 0, ("--epochs", "3"), "1.1").id
    a = expand("quick", grid, [0], random=3, sample_seed=5)
    b = expand("quick", grid, [0], random=3, sample_seed=5)
    assert [t.id for t in a] == [t.id for t in b] and len(a) == 3
    for bad, message in ((["lr"], "KEY=V1,V2"), (["a=1,1"], "repeated"), (["a=1", "a=2"], "twice")):
        with pytest.raises(ValueError, match=message):
            parse_grid(bad)
    for bad in ("3-1", "x", "0,0", "-1"):
        with pytest.raises(ValueError, match="--seeds"):
            parse_seeds(bad)
    with pytest.raises(ValueError, match="--random: expected 1 to 4"):
        expand("quick", grid, [0], random=5)


def test_bad_options_fail_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="grid point activation=tanh: --set activation"):
        _sweep(tmp_path / "s", grid=parse_grid(["activation=relu,tanh"]))
    with pytest.raises(ValueError, match="--workers: expected an integer >= 1"):
        _sweep(tmp_path / "s", workers=0)
    assert not (tmp_path / "s").exists()


def _write_sweep(folder, grid, seeds, values):
    """A finished-looking sweep folder: values[(point tuple, seed)] = test accuracy."""
    trials = expand("quick", grid, seeds)
    plan = {"recipe": "quick", "grid": [[k, v] for k, v in grid], "seeds": seeds,
            "trials": [{"id": t.id, "point": dict(t.point), "seed": t.seed} for t in trials]}
    folder.mkdir()
    (folder / "sweep.json").write_text(json.dumps(plan))
    for t in trials:
        value = values.get((tuple(v for _, v in t.point), t.seed))
        if value is not None:
            (folder / "trials" / t.id).mkdir(parents=True)
            (folder / "trials" / t.id / "result.json").write_text(json.dumps(
                {**t.to_json(), "test_accuracy": value, "val_accuracy": value}))


def test_aggregate_against_hand_computed_values_and_a_golden_table(tmp_path):
    grid = [("activation", ["relu", "gelu"]), ("flip", ["true", "false"])]
    values = {(("relu", "true"), 0): 0.80, (("relu", "true"), 1): 0.82,
              (("relu", "true"), 2): 0.87, (("relu", "false"), 0): 0.75,
              (("gelu", "true"), 0): 0.90, (("gelu", "true"), 1): 0.91,
              (("gelu", "true"), 2): 0.89, (("gelu", "false"), 2): 0.70,
              (("gelu", "false"), 1): 0.72}
    _write_sweep(tmp_path / "s", grid, [0, 1, 2], values)
    rows = aggregate(tmp_path / "s")
    first = rows[0]
    assert (first["activation"], first["flip"], first["n"]) == ("relu", "true", 3)
    assert first["mean"] == pytest.approx(0.83)
    assert first["std"] == pytest.approx(math.sqrt(((0.03) ** 2 + 0.01 ** 2 + 0.04 ** 2) / 2))
    assert (first["min"], first["max"], first["missing_seeds"]) == (0.80, 0.87, [])
    assert rows[1]["n"] == 1 and rows[1]["std"] is None and rows[1]["missing_seeds"] == [1, 2]
    by_act = aggregate(tmp_path / "s", by=["activation"])
    assert [r["n"] for r in by_act] == [4, 5]
    assert by_act[0]["missing_seeds"] == [1, 2] and by_act[1]["missing_seeds"] == [0]
    assert format_table(by_act, ["activation"], "md", scale=100) == (
        "| activation | n | mean | std | min | max | missing_seeds |\n"
        "|---|---:|---:|---:|---:|---:|---:|\n"
        "| relu | 4 | 81.00 | 4.97 | 75.00 | 87.00 | 1, 2 |\n"
        "| gelu | 5 | 82.40 | 10.45 | 70.00 | 91.00 | 0 |\n")
    csv = format_table(by_act, ["activation"], "csv").splitlines()
    assert csv[0] == "activation,n,mean,std,min,max,missing_seeds"
    assert csv[1].startswith("relu,4,0.81") and csv[1].endswith(",1 2")
    assert json.loads(format_table(by_act, ["activation"], "json")) == by_act
    with pytest.raises(ValueError, match="--by: lr is not a grid key"):
        aggregate(tmp_path / "s", by=["lr"])


# 2. The local default ----------------------------------------------------------

def test_local_cluster_runs_two_trials_at_a_time_with_the_asked_threads(tmp_path, fake):
    report = _sweep(tmp_path / "s", seeds=[0, 1, 2]).run()
    assert len(report.results) == 6 and not report.failed and report.skipped == 0
    calls = fake()
    assert len(calls) == 6 and {c["threads"] for c in calls} == {"1"}
    events = sorted([(c["start"], 1) for c in calls] + [(c["end"], -1) for c in calls])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak <= 2
    assert all(r["attempts"] == 1 and r["threads"] == 1 for r in report.results)
    # a second run skips every finished trial
    again = _sweep(tmp_path / "s", seeds=[0, 1, 2]).run()
    assert again.skipped == 6 and len(fake()) == 6
    assert [r["test_accuracy"] for r in again.results] == [r["test_accuracy"] for r in report.results]
    assert {row["state"] for row in status(tmp_path / "s")} == {"done"}


def test_progress_shows_the_dashboard_and_counts_done_running_failed(tmp_path, fake,
                                                                       monkeypatch, capsys):
    pytest.importorskip("bokeh")                       # the dashboard's dependency
    monkeypatch.setenv("FAKE_FAIL_ALWAYS_SEED", "1")
    sweep = Sweep("tiny", grid=parse_grid(["activation=relu"]), seeds=[0, 1], out=str(tmp_path),
                  epochs=1, retries=0, progress=True, **SIZES)
    report = sweep.run()
    out, err = capsys.readouterr()
    assert len(report.results) == 1 and len(report.failed) == 1
    link = re.search(r"Dask dashboard: (http://127\.0\.0\.1:\d+/status)", out)
    assert link, out
    assert "trials: 100%" in err and "2/2" in err
    assert "done=1" in err and "failed=1" in err and "running=0" in err


def test_a_script_without_a_main_guard_gets_told_why_the_workers_failed(tmp_path, fake):
    script = tmp_path / "unguarded.py"
    script.write_text("from convlab.sweep import Sweep\n"
                      f"Sweep('tiny', seeds=[0], out={str(tmp_path / 's')!r}, epochs=1, "
                      "num_train=256, num_val=64, num_test=64, progress=False).run()\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode != 0
    assert "if __name__ == \"__main__\":" in done.stderr.splitlines()[-1], done.stderr[-2000:]
    assert fake() == []


# 3. Scale-out: a separately started scheduler and two workers ---------------------

def start_external_cluster(scheduler_file, procs):
    """Start ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1.

    They talk through ``scheduler_file``; every process started is appended to
    ``procs`` (even if a later step fails), for the caller to terminate. Returns
    once both workers have joined.
    """
    procs.append(subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    deadline = time.time() + 60
    while not scheduler_file.exists() and time.time() < deadline:
        time.sleep(0.2)
    for _ in range(2):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
             str(scheduler_file), "--nthreads", "1", "--no-dashboard", "--host",
             "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    from dask.distributed import Client
    with Client(scheduler_file=str(scheduler_file)) as client:
        client.wait_for_workers(2, timeout=60)


def test_a_separate_scheduler_and_workers_give_the_same_results(tmp_path, fake):
    local = _sweep(tmp_path / "local").run()
    scheduler_file = tmp_path / "scheduler.json"
    procs = []
    try:
        start_external_cluster(scheduler_file, procs)
        remote = _sweep(tmp_path / "remote", scheduler_file=str(scheduler_file)).run()
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
    assert [(r["id"], r["test_accuracy"], r["val_accuracy"]) for r in remote.results] == \
        [(r["id"], r["test_accuracy"], r["val_accuracy"]) for r in local.results]


# 4. Fault injection: a worker killed mid-trial --------------------------------------

def test_a_killed_worker_s_trial_resumes_from_its_checkpoint(tmp_path, fake, monkeypatch):
    monkeypatch.setenv("FAKE_EPOCHS", "4")
    monkeypatch.setenv("FAKE_SLEEP", "0.5")
    reference = _sweep(tmp_path / "ref", seeds=[0]).run()
    sweep = _sweep(tmp_path / "s", seeds=[0])
    target = sweep.trials[0]
    folder = tmp_path / "s" / "trials" / target.id
    killed = {}

    def kill_at_epoch_2():
        deadline = time.time() + 120
        while time.time() < deadline:
            if (folder / "run" / "checkpoint_epoch_2.json").exists():
                attempt = json.loads((folder / "attempts.json").read_text())
                killed.update(attempt)
                os.kill(attempt["worker_pid"], signal.SIGKILL)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_at_epoch_2)
    killer.start()
    report = sweep.run()
    killer.join()
    assert killed, "the trial never reached epoch 2"
    assert not report.failed
    result = next(r for r in report.results if r["id"] == target.id)
    assert result["attempts"] == 2
    ref = next(r for r in reference.results if r["id"] == target.id)
    assert (result["test_accuracy"], result["val_accuracy"]) == \
        (ref["test_accuracy"], ref["val_accuracy"])
    runs = [c for c in fake() if c["out"] == str(folder / "run")]
    assert runs[-1]["epochs"][0] == 3                  # resumed after checkpoint 2
    deadline = time.time() + 10
    while _alive(killed["pid"]) and time.time() < deadline:
        time.sleep(0.1)
    assert not _alive(killed["pid"]), "the killed worker's trainer is still running"


# 5. Retries and failures -----------------------------------------------------------

def test_a_trial_that_fails_once_is_retried_and_one_that_always_fails_is_reported(
        tmp_path, fake, monkeypatch, capsys):
    from convlab.sweep.__main__ import main
    monkeypatch.setenv("FAKE_FAIL_ONCE_SEED", "1")
    monkeypatch.setenv("FAKE_FAIL_ALWAYS_SEED", "2")
    code = main(["run", "--recipe", "tiny", "--grid", "activation=relu", "--seeds", "0-2",
                 "--epochs", "1", "--num-train", "256", "--num-val", "64", "--num-test", "64",
                 "--retries", "1", "--out", str(tmp_path / "s"), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1
    assert "2 of 3 trials done (0 before this run), 1 failed" in captured.out
    assert "failing seed 2 on attempt 2" in captured.err
    states = {row["seed"]: (row["state"], row["attempts"]) for row in status(tmp_path / "s")}
    assert states == {0: ("done", 1), 1: ("done", 2), 2: ("failed", 2)}


def test_a_worker_with_another_convlab_version_refuses_the_trial(tmp_path, fake):
    from convlab import __version__
    from convlab.sweep.trial import TrialFailed, run_trial
    trial = Trial("tiny", (("activation", "relu"),), 0, ("--epochs", "1"), version="0.0.0-other")
    with pytest.raises(TrialFailed, match=f"runs convlab {__version__}, the sweep was planned "
                                          r"with 0\.0\.0-other"):
        run_trial(trial, tmp_path / "s")
    assert fake() == []                                # the trainer never started
    assert not (tmp_path / "s").exists()               # and nothing was written


# 6. The driver killed half-way --------------------------------------------------------

def test_a_killed_sweep_re_run_does_not_repeat_finished_trials(tmp_path, fake, monkeypatch):
    monkeypatch.setenv("FAKE_SLEEP", "0.6")
    out = tmp_path / "s"
    command = [sys.executable, "-m", "convlab.sweep", "run", "--recipe", "tiny", "--grid",
               "activation=relu,gelu,identity", "--seeds", "0-1", "--epochs", "1",
               "--num-train", "256", "--num-val", "64", "--num-test", "64", "--out", str(out),
               "--no-progress"]
    driver = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        if len(list(out.glob("trials/*/result.json"))) >= 2:
            break
        time.sleep(0.05)
    os.killpg(driver.pid, signal.SIGKILL)             # the driver and its cluster
    driver.wait()
    finished = {p.parent.name for p in out.glob("trials/*/result.json")}
    assert 2 <= len(finished) < 6
    before = fake()
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"6 of 6 trials done ({len(finished)} before this run)" in rerun.stdout
    again = [c for c in fake()[len(before):]]
    assert not {os.path.basename(os.path.dirname(c["out"])) for c in again} & finished
    assert len({os.path.basename(os.path.dirname(c["out"])) for c in again}) == 6 - len(finished)


# The real trainer, end to end ------------------------------------------------------------

DATA = os.environ.get("CONVLAB_DATA") or os.path.join(os.path.dirname(__file__), "..", "..",
                                                      "shared", "datasets")


@pytest.mark.skipif(not os.path.isdir(os.path.join(DATA, "cifar-10-batches-py")),
                    reason="CIFAR-10 not found under CONVLAB_DATA")
def test_a_real_tiny_sweep(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVLAB_DATA", DATA)
    monkeypatch.delenv("CONVLAB_SWEEP_TRAINER", raising=False)
    report = _sweep(tmp_path / "s", grid=parse_grid(["flip=true,false"]), seeds=[0]).run()
    assert len(report.results) == 2 and not report.failed
    for result in report.results:
        history = json.loads((tmp_path / "s" / "trials" / result["id"] / "run" /
                              "history.json").read_text())
        assert result["test_accuracy"] == history["final_test_acc"]
        assert history["recipe"]["flip"] == (result["point"]["flip"] == "true")
    rows = aggregate(tmp_path / "s")
    assert [r["n"] for r in rows] == [1, 1]


# Issue 26 (hardening, round 2) ---------------------------------------------------------

def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sweep_cli(*args, env=None, timeout=60):
    """``python -m convlab.sweep ARGS`` in a child process (so that a hang is a failure)."""
    return subprocess.run([sys.executable, "-m", "convlab.sweep", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture(params=["local", "external"])
def cluster(request, tmp_path, fake):
    """Where the trials run: a function returning Sweep keyword arguments for the in-process
    LocalCluster, or for a ``dask scheduler`` and two ``dask worker`` processes it starts on
    127.0.0.1 (call it after setting the fake trainer's variables: the workers' trials see the
    environment they were started with)."""
    procs = []

    def start():
        if request.param == "local":
            return {}
        scheduler_file = tmp_path / "scheduler.json"
        start_external_cluster(scheduler_file, procs)
        return {"scheduler_file": str(scheduler_file)}

    try:
        yield start
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


# Row 1: --grid epochs=1,3 --epochs 1 trained 1 epoch for both points, labelled 1 and 3.
def test_epochs_given_twice_is_refused_naming_both(tmp_path):
    with pytest.raises(ValueError, match="--grid epochs and --epochs 1 both set the number of "
                                         "epochs; give one or the other"):
        Sweep("tiny", grid=parse_grid(["epochs=1,3"]), out=str(tmp_path / "s"), epochs=1,
              progress=False, **SIZES)
    with pytest.raises(ValueError, match="--epochs 1 and --set epochs=3 both set the number"):
        Sweep("tiny", out=str(tmp_path / "s"), epochs=1, overrides=["epochs=3"], progress=False,
              **SIZES)
    with pytest.raises(ValueError, match="--grid activation and --set activation=relu both set"):
        _sweep(tmp_path / "s", overrides=["activation=relu"])
    # without --epochs, every grid value is checked (epochs=0 slipped through behind --epochs)
    with pytest.raises(ValueError, match="grid point epochs=0: --set epochs: expected a "
                                         "positive integer, got '0'"):
        Sweep("tiny", grid=parse_grid(["epochs=0,2"]), out=str(tmp_path / "s"), progress=False,
              **SIZES)
    done = _sweep_cli("run", "--recipe", "tiny", "--grid", "epochs=1,3", "--epochs", "1",
                      "--out", str(tmp_path / "s"), "--no-progress")
    assert done.returncode == 2 and "give one or the other" in done.stderr.splitlines()[-1]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "s").exists()


# Row 4: another grid into a used --out replaced sweep.json; finished trials vanished.
def test_a_used_folder_refuses_another_plan_and_equal_values_are_one_point(tmp_path, fake,
                                                                          cluster):
    where = cluster()
    out = tmp_path / "s"
    first = _sweep(out, grid=parse_grid(["learning_rate=0.001,0.002"]), seeds=[0], **where).run()
    assert len(first.results) == 2
    plan = (out / "sweep.json").read_bytes()
    for other, message in (({"grid": parse_grid(["learning_rate=0.003"])}, "grid: "),
                           ({"grid": parse_grid(["learning_rate=0.001,0.002"]), "seeds": [0, 1]},
                            "seeds: \\[0\\] in the folder, \\[0, 1\\] now")):
        with pytest.raises(ValueError, match=f"--out {re.escape(str(out))} holds another sweep "
                                             f"\\(.*{message}"):
            _sweep(out, **other, **where)
    # a sweep planned before the other one wrote its plan is refused when it runs
    late = _sweep(tmp_path / "t", grid=parse_grid(["learning_rate=0.003"]), seeds=[0], **where)
    _sweep(tmp_path / "t", grid=parse_grid(["learning_rate=0.001"]), seeds=[0], **where).run()
    with pytest.raises(ValueError, match="holds another sweep"):
        late.run()
    assert (out / "sweep.json").read_bytes() == plan
    assert [r["state"] for r in status(out)] == ["done", "done"]
    # the same values written differently are the same plan, the same trials
    assert parse_grid(["learning_rate=0.0010,2e-3"]) == [("learning_rate", ["0.001", "0.002"])]
    with pytest.raises(ValueError, match="repeated value"):
        parse_grid(["learning_rate=0.1,0.10"])
    with pytest.raises(ValueError, match="--grid learning_rate: a value is given twice"):
        _sweep(out, grid=[("learning_rate", ["0.1", "0.10"])], **where)
    again = _sweep(out, grid=[("learning_rate", ["1e-3", "0.0020"])], seeds=[0], **where).run()
    assert again.skipped == 2 and len(fake()) == 3      # 2 in s, 1 in t: nothing re-run


# Row 5: --random 1 over a 10^7-point grid built the whole product; --seeds 0-20000000 too.
def test_huge_grids_are_sampled_without_being_built_and_trials_are_capped(tmp_path):
    import itertools
    import tracemalloc

    from convlab.sweep.plan import MAX_TRIALS
    small = [("a", ["1", "2", "3"]), ("b", ["x", "y"]), ("c", ["4", "5", "6", "7"])]
    every = [tuple(zip("abc", values)) for values in itertools.product(*[v for _, v in small])]
    assert [t.point for t in expand("tiny", small, [0])] == every
    import numpy as np
    drawn = sorted(np.random.default_rng(3).choice(len(every), 5, replace=False))
    assert [t.point for t in expand("tiny", small, [0], random=5, sample_seed=3)] == \
        [every[i] for i in drawn]                     # the same sample as before
    wide = [(f"k{i}", [str(v) for v in range(10)]) for i in range(5)]      # 10^5 points
    tracemalloc.start()
    try:
        expand("tiny", wide, [0], random=3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20, f"{peak} bytes for 3 of 10^5 points: the grid was built"
    huge = [(f"k{i}", [str(v) for v in range(10)]) for i in range(12)]     # 10^12 points
    trials = expand("tiny", huge, [0, 1], random=2, sample_seed=0)
    assert len(trials) == 4 and len({t.point for t in trials}) == 2
    with pytest.raises(ValueError, match=f"the sweep would have 100000 trials \\(100000 grid "
                                         f"points x 1 seeds\\); a sweep has at most {MAX_TRIALS}"):
        expand("tiny", wide, [0])
    with pytest.raises(ValueError, match="--seeds: '0-20000000' names 20000001 seeds; a sweep "
                                         f"has at most {MAX_TRIALS} trials"):
        parse_seeds("0-20000000")
    done = _sweep_cli("run", "--recipe", "tiny", "--seeds", "0-20000000", "--out",
                      str(tmp_path / "s"), "--no-progress")
    assert done.returncode == 2 and "names 20000001 seeds" in done.stderr
    # the sweep itself: one of 10^7 valid grid points planned and checked
    keys = ("learning_rate", "weight_decay", "momentum", "label_smoothing", "bn_momentum",
            "logit_scale", "bias_lr_scale")
    grid = parse_grid([f"{key}=" + ",".join(f"0.{i}1" for i in range(10)) for key in keys])
    sweep = Sweep("tiny", grid=grid, seeds=[0], out=str(tmp_path / "s"), epochs=1, random=1,
                  progress=False, **SIZES)
    assert len(sweep.trials) == 1 and len(sweep.plan["trials"]) == 1
    assert os.listdir(tmp_path) == []


# Row 6: a missing scheduler file waited forever, a bad address was a traceback, an
# unreachable scheduler a traceback after 30 s; each left a new --out behind.
def test_a_scheduler_that_cannot_be_used_is_an_error_before_anything_is_written(tmp_path):
    out = tmp_path / "s"
    common = ["run", "--recipe", "tiny", "--epochs", "1", "--num-train", "256", "--num-val",
              "64", "--num-test", "64", "--out", str(out), "--no-progress"]
    cases = [(["--scheduler-file", str(tmp_path / "missing.json")],
              f"--scheduler-file {tmp_path / 'missing.json'}: no such file"),
             (["--scheduler", "not a url"], "--scheduler 'not a url' is not a Dask scheduler "
                                            "address such as tcp://host:8786"),
             (["--scheduler", f"tcp://127.0.0.1:{_free_port()}"], "no Dask scheduler answered")]
    for args, message in cases:
        done = _sweep_cli(*common, *args, env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"})
        assert done.returncode == 2, (args, done.stderr[-2000:])
        assert message in done.stderr.splitlines()[-1], done.stderr[-2000:]
        assert "Traceback" not in done.stderr
        assert not out.exists()


# Row 7: a diverging run ended "complete" with NaN weights; a sweep could not tell.
def test_a_diverged_trial_is_recorded_as_diverged_not_failed(tmp_path, fake, monkeypatch,
                                                             cluster, capsys):
    from convlab.sweep.__main__ import main
    monkeypatch.setenv("FAKE_DIVERGE_SEED", "1")
    where = cluster()
    args = ["run", "--recipe", "tiny", "--grid", "activation=relu,gelu", "--seeds", "0-1",
            "--epochs", "1", "--num-train", "256", "--num-val", "64", "--num-test", "64",
            "--retries", "1", "--out", str(tmp_path / "s"), "--no-progress"]
    if where:
        args += ["--scheduler-file", where["scheduler_file"]]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "4 of 4 trials done (0 before this run), 0 failed, 2 diverged" in captured.out
    assert "diverged: trial" in captured.err and "training diverged (fake, seed 1)" in captured.err
    states = {(r["point"]["activation"], r["seed"]): (r["state"], r["attempts"])
              for r in status(tmp_path / "s")}
    assert states == {("relu", 0): ("done", 1), ("relu", 1): ("diverged", 1),
                      ("gelu", 0): ("done", 1), ("gelu", 1): ("diverged", 1)}   # not retried
    rows = aggregate(tmp_path / "s")
    assert [(r["n"], r["missing_seeds"], r["diverged_seeds"]) for r in rows] == \
        [(1, [], [1]), (1, [], [1])]
    table = format_table(rows, ["activation"])
    assert table.splitlines()[0].endswith("| missing_seeds | diverged_seeds |")
    assert table.splitlines()[2].endswith("| – | 1 |")
    assert main(args) == 0                             # a diverged trial is an outcome: kept
    assert "(4 before this run)" in capsys.readouterr().out
    assert len(fake()) == 2


# Rows 8 and 9: a damaged result.json crashed the driver, a damaged attempts.json failed the
# trial on every retry; a full disk lost the report while writing failure.txt.
def test_damaged_files_rerun_their_trial_and_a_full_disk_keeps_the_report(
        tmp_path, fake, monkeypatch, cluster):
    import errno

    from convlab.sweep import driver
    monkeypatch.setenv("FAKE_FAIL_ALWAYS_SEED", "1")     # for the last part
    where = cluster()
    out = tmp_path / "s"
    grid = parse_grid(["activation=relu,gelu,identity"])
    first = _sweep(out, grid=grid, seeds=[0], **where).run()
    assert len(first.results) == 3 and len(fake()) == 3
    ids = [t.id for t in _sweep(out, grid=grid, seeds=[0]).trials]
    result = [out / "trials" / i / "result.json" for i in ids]
    good = json.loads(result[0].read_text())
    result[0].write_text(result[0].read_text()[:40])                  # truncated
    result[1].write_text("")                                          # empty
    result[2].write_text(json.dumps({k: v for k, v in good.items() if k != "test_accuracy"}))
    (out / "trials" / ids[0] / "attempts.json").write_text('{"attem')
    assert [r["state"] for r in status(out)] == ["pending"] * 3
    assert [r["n"] for r in aggregate(out)] == [0, 0, 0]
    again = _sweep(out, grid=grid, seeds=[0], **where).run()
    assert not again.failed and again.skipped == 0 and len(again.results) == 3
    assert [d.split(" is ")[0].split(" has ")[0] for d in again.damaged] == \
        [str(p) for p in result]
    assert again.results[0]["test_accuracy"] == good["test_accuracy"]
    assert [c["epochs"] for c in fake()[3:]] == [[], [], []]   # re-run, but nothing re-trained
    assert [r["state"] for r in status(out)] == ["done"] * 3
    # a full disk: the report survives, failure.txt is best-effort and said to be missing
    real_write = driver.atomic_write_text

    def full_disk(path, text):
        if str(path).endswith("failure.txt"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, text)

    monkeypatch.setattr(driver, "atomic_write_text", full_disk)
    report = _sweep(out / "full", grid=parse_grid(["activation=relu"]), seeds=[0, 1],
                    retries=0, **where).run()
    assert len(report.results) == 1 and len(report.failed) == 1
    assert report.unrecorded == [f"trial {report.failed[0][0].id}: cannot write failure.txt "
                                 "(No space left on device)"]


def test_status_and_aggregate_name_a_damaged_plan(tmp_path):
    from convlab.sweep.__main__ import main
    out = tmp_path / "s"
    out.mkdir()
    for text in ('{"recipe": "tiny", "tri', '{"recipe": "tiny"}', "[]"):
        (out / "sweep.json").write_text(text)
        for command in (status, aggregate):
            with pytest.raises(ValueError, match=re.escape(str(out / "sweep.json"))):
                command(out)
        with pytest.raises(SystemExit) as exit_info:
            main(["status", str(out)])
        assert exit_info.value.code == 2


def test_ctrl_c_in_the_sweep_command_is_one_line(tmp_path, fake, monkeypatch, capsys):
    from convlab.sweep.__main__ import main

    def interrupted(self, client=None):
        raise KeyboardInterrupt
    monkeypatch.setattr(Sweep, "run", interrupted)
    code = main(["run", "--recipe", "tiny", "--epochs", "1", "--num-train", "256", "--num-val",
                 "64", "--num-test", "64", "--out", str(tmp_path / "s"), "--no-progress"])
    assert code == 130
    assert capsys.readouterr().err.splitlines() == [
        "python -m convlab.sweep: interrupted; finished trials are kept: run the same command "
        "again to continue the sweep"]


def test_a_plan_that_cannot_be_written_is_an_error_before_any_trial(tmp_path, fake,
                                                                     monkeypatch):
    # row 9: a full disk at the start is one error, not a traceback
    import errno
    import tempfile

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    sweep = _sweep(tmp_path / "s", seeds=[0])
    monkeypatch.setattr(tempfile, "mkstemp", full_disk)
    with pytest.raises(ValueError, match=f"--out {re.escape(str(tmp_path / 's'))}: cannot write "
                                         "the sweep's plan there \\(No space left on device\\)"):
        sweep.run()
    assert fake() == []
