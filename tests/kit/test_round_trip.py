"""The course kit's round trip: release every exercise, work as a student would, solve, grade.

1. ``check`` passes; ``release`` of all exercises succeeds with a clean leak scan.
2. The student's tree imports; its public tests that fail are exactly the
   assigned exercises' tests; its chapters stop only at assigned stubs; its book builds.
3. Grading the untouched tree: every exercise scores 0 with status ``fail``.
4. ``solve`` gives back the source files byte for byte; grading it gives full marks;
   a re-solved chapter passes nbval.
5. Planted bad submissions each lose exactly their own exercise's points.

Run with ``pytest tests/kit`` (``nox -s kit``); it takes
a few minutes, most of it grading.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from convlab.instructor import release as releasing
from convlab.instructor.chapters import run_chapter

ROOT = Path(__file__).resolve().parents[2]
KERNEL_SOURCES = (".pyx", ".pxd", ".pxi", ".h")
# The files that hold the public tests of the exercises.
EXERCISE_TEST_FILES = ["tests/test_layers.py", "tests/test_layer_utils.py", "tests/test_three_layer_convnet.py",
                       "tests/test_conv_family.py", "tests/test_residual_block.py"]


def instructor(verb, *args, cwd):
    """Run ``python -m convlab.instructor VERB --course ROOT ARGS`` and return its stdout (failing the test on an error)."""
    run = subprocess.run([sys.executable, "-m", "convlab.instructor", verb, "--course", str(ROOT), *map(str, args)],
                         cwd=cwd, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def student_env(tree):
    """Environment in which ``import convlab`` finds the student's tree first."""
    return dict(os.environ, PYTHONPATH=str(Path(tree) / "src"), OMP_NUM_THREADS="1")


def install_kernels(tree):
    """Give the student's tree the pristine tree's built kernels, after checking their sources are identical.

    Stands in for ``pip install`` (a build of the same sources): the release
    never touches the kernels.
    """
    fast = ROOT / "src" / "convlab" / "_fast"
    for source in fast.iterdir():
        if source.suffix in KERNEL_SOURCES:
            assert (Path(tree) / "src/convlab/_fast" / source.name).read_bytes() == source.read_bytes(), source.name
    for built in fast.glob("*.so"):
        shutil.copy2(built, Path(tree) / "src/convlab/_fast" / built.name)


# --- planted submissions: (name, exercise it breaks or None, [(function, old text, new text), ...]).
# A backward pass is graded on the cache of the submission's own forward pass, so a fault that makes a
# forward pass raise is planted where no backward pass depends on it.
PLANTS = [
    ("missing-bias-gradient", "conv.backward", [("conv_backward_naive",
     "db = dout.sum(axis=(0, 2, 3)).astype(dtype, copy=False)", "db = np.zeros(F, dtype=dtype)")]),
    ("ignored-stride", "conv.forward", [("conv_forward_naive", "top, left = i * stride, j * stride", "top, left = i, j")]),
    ("infinite-loop", "pool.backward", [("max_pool_backward_naive",
     "dx = np.zeros(x.shape, dtype=_float_dtype(x, dout))\n",
     "dx = np.zeros(x.shape, dtype=_float_dtype(x, dout))\n    while True:\n        pass\n")]),
    ("os-exit", "conv.backward", [("conv_backward_naive",
     "dx = dx_pad[:, :, pad:pad + H, pad:pad + W]", "__import__('os')._exit(0)\n    dx = dx_pad[:, :, pad:pad + H, pad:pad + W]")]),
    ("syntax-error", "spatial_bn.backward", [("spatial_batchnorm_backward",
     "batchnorm_backward_alt(_channels_last(dout), bn_cache)", "batchnorm_backward_alt(_channels_last(dout), bn_cache")]),
    ("naive-calls-fast", "pool.backward", [("max_pool_backward_naive",
     "ph, pw, stride = int(pool_param[\"pool_height\"])",
     "from convlab.fast_layers import max_pool_backward_fast\n"
     "    return max_pool_backward_fast(dout, cache)\n    ph, pw, stride = int(pool_param[\"pool_height\"])")]),
    # the convolution family's naive layers are graded as naive as the course's
    ("family-calls-fast", "conv_general.forward", [("conv_general_forward_naive",
     "F_g = F // groups\n    dilated",
     "from convlab.fast_layers import conv_general_forward_fast\n"
     "    return conv_general_forward_fast(x, w, b, conv_param)\n    F_g = F // groups\n    dilated")]),
    # the residual block: a backward pass that forgets the shortcut's gradient (the main path's alone reaches
    # dx), and a forward pass that adds the main path into the shortcut in place, which for the identity
    # shortcut is the caller's x (its output and its cache stay right, so its backward pass keeps its marks)
    ("residual-drops-shortcut-gradient", "residual.backward", [("residual_block_backward",
     'dx, grads["w1"] = _conv_rounding_down_backward(dh, conv1)',
     'dx, grads["w1"] = _conv_rounding_down_backward(dh, conv1)\n    return dx, grads')]),
    ("residual-adds-into-input", "residual.forward", [("residual_block_forward",
     'out, act = activation_forward_fast(h + skip, "relu")',
     'skip += h\n    out, act = activation_forward_fast(skip, "relu")')]),
    # correct, with a cache laid out its own way: the backward pass gets what its own forward pass made
    ("own-cache-layout", None, [
        ("spatial_batchnorm_forward", "return _channels_first(out_rows, x.shape), (bn_cache, x.shape)",
         "return _channels_first(out_rows, x.shape), {\"rows\": bn_cache, \"shape\": x.shape}"),
        ("spatial_batchnorm_backward", "bn_cache, x_shape = cache", "bn_cache, x_shape = cache[\"rows\"], cache[\"shape\"]")]),
]
# The family's reference solutions are built on the course's convolution (so that they give none of it
# away): a fault in conv_forward_naive or conv_backward_naive may also cost the family exercise whose
# solution calls it -- and nothing else.
BUILT_ON = {"conv.forward": {"conv_general.forward"}, "conv.backward": {"conv_transpose.forward"}}
EXPECTED_STATUS = {"missing-bias-gradient": "fail", "ignored-stride": "fail", "infinite-loop": "timeout",
                   "os-exit": "crash", "syntax-error": "import-error", "naive-calls-fast": "fail",
                   "family-calls-fast": "fail", "residual-drops-shortcut-gradient": "fail",
                   "residual-adds-into-input": "fail"}
# The submitted modules that the plants edit, and the other files of a submission.
PLANTED_MODULES = ("layers.py", "conv_family.py", "layer_utils.py")
UNCHANGED_MODULES = ("classifiers/three_layer_convnet.py",)


def plant(solved, out, edits):
    """A copy of the solved tree's submission with each ``(function, old, new)`` edit made inside ``function``,
    in whichever of :data:`PLANTED_MODULES` defines it."""
    texts = {name: (solved / "src/convlab" / name).read_text() for name in PLANTED_MODULES}
    for function, old, new in edits:
        (name,) = [name for name, text in texts.items() if f"\ndef {function}(" in text]
        text = texts[name]
        start = text.index(f"\ndef {function}(")
        end = text.find("\ndef ", start + 1)
        end = len(text) if end < 0 else end  # the module's last function runs to its end
        body = text[start:end]
        assert body.count(old) == 1, (function, old)
        texts[name] = text[:start] + body.replace(old, new) + text[end:]
    for name, text in texts.items():
        (out / "src/convlab" / name).parent.mkdir(parents=True, exist_ok=True)
        (out / "src/convlab" / name).write_text(text)
    for name in UNCHANGED_MODULES:
        (out / "src/convlab" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(solved / "src/convlab" / name, out / "src/convlab" / name)


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """Release everything, solve a copy, plant the bad submissions, and grade them all once (--jobs 2)."""
    work = tmp_path_factory.mktemp("kit")
    check = instructor("check", cwd=work)
    released = instructor("release", "--assign", "*", "--out", "release", "--bundle", "grading", cwd=work)
    tree = work / "release"
    solved = work / "submissions" / "solved"
    shutil.copytree(tree, solved)
    solve = instructor("solve", solved, cwd=work)
    # the untouched tree is handed in as a student would: the zip that `convlab.submit collect` writes
    (work / "submissions").mkdir(exist_ok=True)
    collect = subprocess.run([sys.executable, "-m", "convlab.submit", "collect", "--out",
                              work / "submissions" / "untouched.zip"], cwd=tree, env=student_env(tree),
                             capture_output=True, text=True)
    assert collect.returncode == 0, collect.stderr
    untouched = work / "submissions" / "untouched.zip"
    for name, _, edits in PLANTS:
        plant(solved, work / "submissions" / name, edits)
    submissions = [untouched, solved] + [work / "submissions" / p[0] for p in PLANTS]
    graded = instructor("grade", *submissions, "--bundle", "grading", "--out", "grades", "--jobs", 2,
                        "--timeout", 10, "--no-progress", cwd=work)
    results = {p.stem: json.loads((work / "grades" / f"{p.stem}.json").read_text()) for p in submissions}
    manifest = json.loads((tree / releasing.MANIFEST).read_text())
    return {"work": work, "tree": tree, "solved": solved, "check": check, "release": released, "solve": solve,
            "graded": graded, "results": results, "manifest": manifest}


def test_1_check_passes_and_release_of_everything_is_clean(kit):
    assert kit["check"].rstrip().endswith("every mark's exercise exists")
    assert "leak scan: clean" in kit["release"]
    assert set(kit["manifest"]["exercises"]) == set(releasing.find_exercises(ROOT))
    tree = kit["tree"]
    for path in ("src/convlab/instructor", "tests/hidden", "benchmarks", "book/instructors.md"):
        assert not (tree / path).exists(), path
    assert (tree / "SUBMIT.md").is_file()
    assert releasing.leak_scan(tree, releasing._secret_lines(ROOT, releasing.repository_files(ROOT),
                               releasing.find_exercises(ROOT), set(kit["manifest"]["exercises"]))) == []


def test_2_student_public_tests_fail_exactly_on_the_assigned_exercises(kit):
    tree = kit["tree"]
    install_kernels(tree)
    imported = subprocess.run([sys.executable, "-c", "import convlab.layers, convlab.fast_layers, convlab.submit;"
                               "import convlab.layers as L; print(L.__file__)"],
                              env=student_env(tree), capture_output=True, text=True, cwd=tree)
    assert imported.returncode == 0 and imported.stdout.strip().startswith(str(tree)), imported.stderr
    # every public test module can be collected (one that calls a stub at import is skipped)
    collected = subprocess.run([sys.executable, "-m", "pytest", "tests", "--collect-only", "-q", "-p", "no:cacheprovider"],
                               env=student_env(tree), cwd=tree, capture_output=True, text=True)
    assert collected.returncode == 0, collected.stdout[-3000:]
    report = kit["work"] / "student-tests.xml"
    subprocess.run([sys.executable, "-m", "pytest", *EXERCISE_TEST_FILES, "-q", "-p", "no:cacheprovider",
                    f"--junitxml={report}"], env=student_env(tree), cwd=tree, capture_output=True)
    assigned = set(kit["manifest"]["exercises"])
    marked = {(t["file"], t["test"]): t["exercise"] for t in releasing.find_graded_tests(ROOT)}
    failed, needs = set(), {}
    for case in ET.parse(report).getroot().iter("testcase"):
        file = case.get("classname").replace(".", "/") + ".py"
        name = case.get("name").split("[")[0]
        failure, skipped = case.find("failure"), case.find("skipped")
        if failure is not None:
            failed.add((file, name))
            stub = re.search(r"NotImplementedError: (\S+): implement", failure.get("message", "") + (failure.text or ""))
            assert stub and stub[1] in assigned and stub[1] == marked.get((file, name)), (file, name)
        elif skipped is not None and "needs exercise" in skipped.get("message", ""):
            needs[(file, name)] = re.search(r"needs exercise (\S+),", skipped.get("message"))[1]
    assert all(exercise in assigned for exercise in needs.values()), needs
    # every public test of an assigned exercise either fails on its own stub or waits for another assigned one
    public = {key for key in marked if key[0] in EXERCISE_TEST_FILES}
    assert public == failed | (public & set(needs)), sorted(public - failed - set(needs))
    assert failed, "no public test failed"


def test_2_released_chapters_stop_only_at_assigned_stubs(kit):
    """Each chapter that calls an assigned function by name runs until an assigned stub stops it.

    A chapter that names none (the experiments chapter, which trains for
    minutes) is executed only with CONVLAB_KIT_ALL_CHAPTERS=1; the notebook
    stage runs its unchanged code on the package anyway.
    """
    tree = kit["tree"]
    install_kernels(tree)
    assigned = set(kit["manifest"]["exercises"])
    functions = {p["function"].split(".")[0] for places in kit["manifest"]["exercises"].values() for p in places}
    stopped = {}
    for chapter in sorted((tree / "book").glob("*.ipynb")):
        names = any(f in chapter.read_text() for f in functions)
        if not names and os.environ.get("CONVLAB_KIT_ALL_CHAPTERS") != "1":
            continue
        result = run_chapter(chapter, chapter.parent, timeout=600, env=student_env(tree))
        if result["error"] is not None:
            assert result["error"]["exercise"] in assigned, (chapter.name, result)
            stopped[chapter.name] = result["error"]["exercise"]
    assert stopped, "no released chapter reached a stub"


def test_2_student_book_builds_without_warnings(kit, tmp_path):
    tree = tmp_path / "book-tree"
    shutil.copytree(kit["tree"], tree, ignore=shutil.ignore_patterns("_build", "*.so"))
    assert "instructors" not in (tree / "_toc.yml").read_text()
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    run = subprocess.run([jupyter_book, "build", "--all", ".", "-W", "--keep-going", "--quiet"],
                         cwd=tree, capture_output=True, text=True)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert (tree / "_build/html/book/01-convolution.html").is_file()


def test_2_collect_fails_loudly_when_a_file_is_missing(kit, tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(kit["tree"] / "src", tree / "src")
    (tree / "src/convlab/layer_utils.py").unlink()
    run = subprocess.run([sys.executable, "-m", "convlab.submit", "collect", "--out", tmp_path / "s.zip"],
                         cwd=tree, env=student_env(tree), capture_output=True, text=True)
    assert run.returncode != 0 and "src/convlab/layer_utils.py" in run.stderr
    assert not (tmp_path / "s.zip").exists()


def test_3_untouched_tree_scores_zero_with_fail_everywhere(kit):
    result = kit["results"]["untouched"]
    assert result["score"] == 0 and result["max_score"] > 0
    assert {t["status"] for t in result["tests"]} == {"fail"}
    assert all("NotImplementedError" in t["output"] for t in result["tests"])


def test_4_solve_restores_the_sources_byte_for_byte_and_scores_full_marks(kit):
    solved = kit["solved"]
    for path in releasing.repository_files(ROOT):
        if path.endswith(releasing.MARKED_SUFFIXES + (".ipynb",)) and (solved / path).exists():
            assert (solved / path).read_bytes() == (ROOT / path).read_bytes(), path
    result = kit["results"]["solved"]
    assert result["score"] == result["max_score"], result
    assert {t["status"] for t in result["tests"]} == {"pass"}


def test_4_a_re_solved_chapter_passes_nbval(kit):
    """The re-solved chapters are the source chapters byte for byte (above), which the notebook
    stage checks; one of them is run through nbval here, in the solved tree, as a witness."""
    solved = kit["solved"]
    install_kernels(solved)
    run = subprocess.run([sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env", "-q",
                          "-p", "no:cacheprovider", "book/02-max-pooling.ipynb"],
                         cwd=solved, env=student_env(solved), capture_output=True, text=True)
    assert run.returncode == 0 and " passed" in run.stdout, run.stdout[-3000:]


@pytest.mark.parametrize("name, exercise", [(p[0], p[1]) for p in PLANTS])
def test_5_a_planted_fault_costs_exactly_its_own_exercise(kit, name, exercise):
    """The faulty exercise loses points (all of them, unless a wrong answer still passes some
    tests, as an ignored stride does at stride 1); every other exercise keeps full marks, but for
    a family exercise whose solution calls the faulty function (BUILT_ON). A correct answer with a
    cache of its own layout (exercise None) keeps full marks everywhere."""
    full = {t["name"]: t["max_points"] for t in kit["results"]["solved"]["tests"]}
    for test in kit["results"][name]["tests"]:
        if test["name"] == exercise:
            assert test["status"] == EXPECTED_STATUS[name] and test["points"] < test["max_points"], test
            if EXPECTED_STATUS[name] != "fail" or name in ("naive-calls-fast", "family-calls-fast"):
                assert test["points"] == 0, test
        elif test["name"] not in BUILT_ON.get(exercise, ()):
            assert test["points"] == full[test["name"]] and test["status"] == "pass", test


def test_grading_table_and_summary(kit):
    print(kit["graded"])
    summary = (kit["work"] / "grades" / "summary.csv").read_text().splitlines()
    assert len(summary) == 1 + 2 + len(PLANTS)
    again = instructor("grade", *sorted((kit["work"] / "submissions").iterdir()), "--bundle", "grading",
                       "--out", "grades", "--no-progress", cwd=kit["work"])
    assert again.splitlines()[-1].startswith("graded 0 submissions in ")
    assert f"({2 + len(PLANTS)} graded before, not again)" in again.splitlines()[-1]


def test_the_instructors_page_states_the_points_the_tests_carry(kit):
    """The instructors' table of graded exercises (exercise, chapter, function, points, ...) lists every
    exercise with the points its tests' marks add up to."""
    full = {t["name"]: t["max_points"] for t in kit["results"]["solved"]["tests"]}
    page = (ROOT / "book" / "instructors.md").read_text()
    stated = {e: float(p) for e, p in re.findall(r"^\| `([a-z_.]+)` \| \d+ \| [^|]+ \| (\d+) \|", page, re.M)}
    assert stated == full


def test_the_gradescope_autograder_grades_a_submission_in_a_fake_autograder_root(kit, tmp_path):
    """``gradescope`` writes the zip; its ``run_autograder``, run in a fake ``/autograder`` layout with this
    environment standing in for the venv that ``setup.sh`` builds, grades the solved submission to full marks
    and writes Gradescope's ``results.json``."""
    import zipfile

    root = tmp_path / "autograder"
    instructor("gradescope", "--assign", "*", "--out", tmp_path / "autograder.zip", cwd=kit["work"])
    with zipfile.ZipFile(tmp_path / "autograder.zip") as archive:
        archive.extractall(root / "source")
    course = root / "source" / "course"
    for args in (["init", "-q"], ["add", "-A"]):  # as setup.sh does: the kit works on a git tree
        subprocess.run(["git", "-C", str(course), *args], check=True, capture_output=True)
    (root / "venv").symlink_to(Path(sys.prefix))
    shutil.copytree(kit["solved"] / "src", root / "submission" / "src")
    script = root / "source" / "run_autograder"
    run = subprocess.run(["bash", str(script)], env=dict(os.environ, CONVLAB_AUTOGRADER_ROOT=str(root)),
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    results = json.loads((root / "results" / "results.json").read_text())
    full = sum(t["max_points"] for t in kit["results"]["solved"]["tests"])
    assert results["score"] == full and sum(t["max_score"] for t in results["tests"]) == full
    assert {t["status"] for t in results["tests"]} == {"passed"}
    assert {t["visibility"] for t in results["tests"]} <= {"visible", "after_due_date", "hidden"}
