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

def test_a_separate_scheduler_and_workers_give_the_same_results(tmp_path, fake):
    local = _sweep(tmp_path / "local").run()
    scheduler_file = tmp_path / "scheduler.json"
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    procs = [subprocess.Popen([*dask, "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(scheduler_file)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.time() + 60
        while not scheduler_file.exists() and time.time() < deadline:
            time.sleep(0.2)
        for _ in range(2):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
                 str(scheduler_file), "--nthreads", "1", "--no-dashboard",
                 "--host", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from dask.distributed import Client
        with Client(scheduler_file=str(scheduler_file)) as client:
            client.wait_for_workers(2, timeout=60)
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
