"""A stand-in for ``python -m convlab.train`` in the sweep tests: fast, deterministic, observable.

Takes the same arguments. Trains ``FAKE_EPOCHS`` "epochs" of ``FAKE_SLEEP``
seconds, writing ``checkpoint_epoch_<e>.json`` after each and resuming from
the last one with ``--resume``; writes ``history.json`` with accuracies that
depend only on the seed and the overrides. Every invocation appends a line
to ``FAKE_LOG`` (JSON: out, pid, start, end, epochs run, the thread variables
it saw). ``FAKE_FAIL_ONCE_SEED`` / ``FAKE_FAIL_ALWAYS_SEED`` make the trials
of that seed fail on their first / every attempt; ``FAKE_DIVERGE_SEED`` makes
them end as the real trainer does when the loss becomes NaN (an ``error:``
line and exit status :data:`convlab.train.EXIT_DIVERGED`).
"""

import argparse
import hashlib
import json
import os
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--recipe")
parser.add_argument("--seed", type=int)
parser.add_argument("--set", action="append", default=[])
parser.add_argument("--out")
parser.add_argument("--epochs", type=int)
parser.add_argument("--num-train")
parser.add_argument("--num-val")
parser.add_argument("--num-test")
parser.add_argument("--resume", action="store_true")
parser.add_argument("--no-progress", action="store_true")
args = parser.parse_args()

start = time.time()
epochs = int(os.environ.get("FAKE_EPOCHS", "3"))
os.makedirs(args.out, exist_ok=True)
with open(os.path.join(os.path.dirname(args.out), "attempts.json")) as f:
    attempt = json.load(f)["attempts"]
if str(args.seed) == os.environ.get("FAKE_FAIL_ALWAYS_SEED") or (
        str(args.seed) == os.environ.get("FAKE_FAIL_ONCE_SEED") and attempt == 1):
    sys.exit(f"fake trainer: failing seed {args.seed} on attempt {attempt}")
if str(args.seed) == os.environ.get("FAKE_DIVERGE_SEED"):
    print(f"python -m convlab.train: error: the training loss became nan at iteration 3 "
          f"(epoch 1): training diverged (fake, seed {args.seed})", file=sys.stderr)
    sys.exit(3)
done = [int(n[len("checkpoint_epoch_"):-len(".json")]) for n in os.listdir(args.out)
        if n.startswith("checkpoint_epoch_")]
first = max(done, default=0) + 1
for epoch in range(first, epochs + 1):
    time.sleep(float(os.environ.get("FAKE_SLEEP", "0.3")))
    with open(os.path.join(args.out, f"checkpoint_epoch_{epoch}.json"), "w") as f:
        json.dump({"epoch": epoch}, f)
digest = hashlib.sha256(json.dumps([args.seed, sorted(args.set)]).encode()).digest()
history = {"final_val_acc": 0.5 + digest[0] / 1000, "final_test_acc": 0.5 + digest[1] / 1000,
           "wall_time": time.time() - start}
with open(os.path.join(args.out, "history.json"), "w") as f:
    json.dump(history, f)
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps({"out": args.out, "pid": os.getpid(), "start": start, "end": time.time(),
                        "epochs": list(range(first, epochs + 1)),
                        "threads": os.environ.get("OMP_NUM_THREADS")}) + "\n")
