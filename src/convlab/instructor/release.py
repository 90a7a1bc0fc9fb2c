"""From the instructor's repository to a student's: check, release, leak scan, solve.

The repository is the single source: the package's solution blocks, the
chapters, the public tests (``tests/``, whose ``@pytest.mark.exercise`` marks
carry the points) and the hidden ones (``tests/hidden/``, instructor only).
"""

import ast
import fnmatch
import json
import re
import shutil
import subprocess
from pathlib import Path

from convlab.instructor import notebooks
from convlab.instructor.markers import BEGIN, END, STUB, find_blocks, release_text, solve_text

# Paths (relative to the repository, glob patterns) that never reach a student.
INSTRUCTOR_ONLY = (
    "src/convlab/instructor/*",
    "tests/hidden/*",
    "tests/instructor/*",
    "tests/kit/*",
    "benchmarks/*",
    "book/instructors.md",
    ".ci/*",
    # check the chapters' stored outputs, which a released chapter does not have
    "tests/test_book_outputs.py",
    "tests/load/*",
)
MARKED_SUFFIXES = (".py", ".pyx", ".pxd", ".pxi")
MANIFEST = "src/convlab/submit/assignment.json"
_TEXT_SUFFIXES = MARKED_SUFFIXES + (".md", ".txt", ".yml", ".yaml", ".toml", ".cfg", ".sh", ".h", ".c", ".json", ".ipynb")


class ReleaseError(RuntimeError):
    """The repository cannot be released as asked."""


def _instructor_only(path):
    return any(fnmatch.fnmatch(path, pattern) for pattern in INSTRUCTOR_ONLY)


def _earlier_outputs(root, paths):
    """Folders among ``paths`` that hold a student's tree or a grader's bundle written by an earlier release.

    Run from the course's root, ``release --out release --bundle grading``
    writes both inside the repository, as new files that git lists; they are
    outputs, never part of the course (the bundle holds the hidden tests).
    """
    folders = set()
    for path in paths:
        if path.endswith("/" + MANIFEST):
            folders.add(path[:-len("/" + MANIFEST)])
        elif path.endswith("/assignment.json") and (Path(root) / path).parent.joinpath("tests", "hidden").is_dir():
            folders.add(path[:-len("/assignment.json")])
    return folders


def repository_files(root):
    """Relative paths of the files of the repository at ``root``: git's tracked and new, not ignored ones.

    Earlier releases' trees and bundles inside the repository are left out.
    """
    listing = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True, capture_output=True, text=True,
    ).stdout
    paths = [path for path in set(listing.split("\0")) if path and (Path(root) / path).is_file()]
    outputs = _earlier_outputs(root, paths)
    return sorted(path for path in paths if not any(path.startswith(folder + "/") for folder in outputs))


def find_exercises(root, files=None):
    """Every solution block of the repository, by exercise.

    Returns
    -------
    dict
        ``{exercise_id: [{"file": path, "function": name}, ...]}`` in file order.
    """
    exercises = {}
    for path in files if files is not None else repository_files(root):
        if _instructor_only(path):
            continue
        text = (Path(root) / path).read_text(encoding="utf-8") if path.endswith(MARKED_SUFFIXES + (".ipynb",)) else ""
        if path.endswith(MARKED_SUFFIXES):
            blocks = [(b.exercise, b.function) for b in find_blocks(text, path)]
        elif path.endswith(".ipynb"):
            blocks = []
            for number, cell in enumerate(notebooks.read(text).cells):
                if cell.cell_type != "code":
                    continue
                blocks += [(b.exercise, b.function) for b in find_blocks(cell.source, f"{path} cell {number}")]
                if "solution" in cell.metadata.get("tags", []) and cell.metadata.get("exercise"):
                    blocks.append((cell.metadata["exercise"], "this cell"))
        else:
            continue
        for exercise, function in blocks:
            exercises.setdefault(exercise, []).append({"file": path, "function": function})
    return exercises


def _mark_arguments(node):
    """``(id, points)`` of a ``pytest.mark.exercise(...)`` call node, or None."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "exercise"):
        return None
    exercise = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
    points = next((k.value.value for k in node.keywords if k.arg == "points" and isinstance(k.value, ast.Constant)), 1)
    return exercise, points


def find_graded_tests(root, files=None):
    """The tests that carry an exercise mark, read from the test files without running them.

    Returns
    -------
    list of dict
        ``{"file", "test", "exercise", "points"}`` per marked test function.
    """
    found = []
    for path in files if files is not None else repository_files(root):
        if not (path.startswith("tests/") and Path(path).name.startswith("test_") and path.endswith(".py")):
            continue
        tree = ast.parse((Path(root) / path).read_text(encoding="utf-8"), path)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for decorator in node.decorator_list:
                    mark = _mark_arguments(decorator)
                    if mark:
                        found.append({"file": path, "test": node.name, "exercise": mark[0], "points": mark[1]})
    return found


def check(root):
    """Problems of the repository's exercises; an empty list when all is well.

    Markers balanced and well formed (:func:`find_blocks` raises otherwise),
    no function holding two blocks of one exercise, every exercise graded by
    some marked test, every mark naming an exercise that exists, points positive.
    """
    problems = []
    files = repository_files(root)
    exercises = find_exercises(root, files)
    for exercise, places in exercises.items():
        seen = [(p["file"], p["function"]) for p in places]
        for place in sorted(set(seen)):
            if seen.count(place) > 1 and place[1] != "this cell":
                problems.append(f"{place[0]}: {place[1]} has {seen.count(place)} blocks of {exercise}")
    tests = find_graded_tests(root, files)
    graded = {t["exercise"] for t in tests}
    for exercise in sorted(set(exercises) - graded):
        problems.append(f"exercise {exercise} ({exercises[exercise][0]['file']}) is graded by no test")
    for test in tests:
        if test["exercise"] not in exercises:
            problems.append(f"{test['file']}::{test['test']} grades {test['exercise']!r}, which no solution block defines")
        if not (isinstance(test["points"], (int, float)) and test["points"] > 0):
            problems.append(f"{test['file']}::{test['test']} has points={test['points']!r}; need a positive number")
    return problems


def select(exercises, patterns):
    """The exercise ids matching comma-separated glob ``patterns`` (``'conv.*,pool.forward'``)."""
    chosen = set()
    for pattern in (p.strip() for p in patterns.split(",") if p.strip()):
        matched = fnmatch.filter(exercises, pattern)
        if not matched:
            raise ReleaseError(f"--assign pattern {pattern!r} matches no exercise; there are: {', '.join(sorted(exercises))}")
        chosen.update(matched)
    if not chosen:
        raise ReleaseError("--assign names no exercise")
    return sorted(chosen)


def _release_toc(text, dropped):
    """``_toc.yml`` without the entries of files that are not released.

    A part (``- caption: ...``) all of whose files are dropped is dropped with
    them: a part without chapters is not a valid table of contents.
    """
    stems = {str(Path(path).with_suffix("")) for path in dropped}
    pattern = re.compile(r"^\s*-\s*file:\s*(\S+)\s*$")
    part = re.compile(r"^(\s*)-\s*caption:")
    kept, block, block_indent = [], None, None

    def close(block):
        files = [line for line in block if pattern.match(line)]
        if not files or any(pattern.match(line)[1] not in stems for line in files):
            kept.extend(block)

    for line in text.splitlines(keepends=True):
        start = part.match(line)
        if block is not None and (start or (line.strip() and not line.startswith(block_indent + " "))):
            close(block)
            block = None
        if start:
            block, block_indent = [], start[1]
        (block if block is not None else kept).append(line)
    if block is not None:
        close(block)
    return "".join(line for line in kept
                   if not (pattern.match(line) and pattern.match(line)[1] in stems))


def _secret_lines(root, files, exercises, assigned):
    """Lines of the assigned solutions that occur in no package or test source outside a block."""
    inside, outside = set(), set()
    for path in files:
        if not path.endswith(MARKED_SUFFIXES) or _instructor_only(path):
            continue
        lines = (Path(root) / path).read_text(encoding="utf-8").splitlines()
        blocks = find_blocks("\n".join(lines), path)
        in_block = {n for b in blocks for n in range(b.start, b.stop + 1)}
        for block in blocks:
            if block.exercise in assigned:
                inside.update(line.strip() for line in block.lines)
        outside.update(line.strip() for n, line in enumerate(lines) if n not in in_block)
    return {line for line in inside - outside if len(line) >= 16 and not line.startswith("#")}


def _kept_solutions_holding(root, files, assigned, secrets):
    """The unassigned exercises whose solutions, kept in a release, hold a line of ``secrets``.

    Such a line shows in the student's tree by design (an unassigned exercise
    keeps its solution), so the leak scan refuses the release: the two
    exercises share code (the convolution's and the pooling's window loops,
    say) and must be assigned together.
    """
    kept = set()
    for path in files:
        if _instructor_only(path) or not path.endswith(MARKED_SUFFIXES + (".ipynb",)):
            continue
        text = (Path(root) / path).read_text(encoding="utf-8")
        sources = ([cell.source for cell in notebooks.read(text).cells if cell.cell_type == "code"]
                   if path.endswith(".ipynb") else [text])
        for source in sources:
            for block in find_blocks(source, path):
                if block.exercise not in assigned and secrets & {line.strip() for line in block.lines}:
                    kept.add(block.exercise)
    return sorted(kept)


def leak_scan(tree, secrets):
    """Places in the released ``tree`` where a marker or a secret solution line shows.

    Returns
    -------
    list of str
        ``"path: what"`` per leak; empty when clean.
    """
    leaks = []
    for path in sorted(p for p in Path(tree).rglob("*") if p.is_file() and p.suffix in _TEXT_SUFFIXES):
        relative = path.relative_to(tree).as_posix()
        text = path.read_text(encoding="utf-8", errors="replace")
        texts = list(notebooks.notebook_texts(text)) if path.suffix == ".ipynb" else [text]
        for chunk in texts:
            for line in chunk.splitlines():
                if BEGIN.match(line) or END.match(line) or STUB.match(line):
                    leaks.append(f"{relative}: marker line {line.strip()!r}")
                elif line.strip() in secrets:
                    leaks.append(f"{relative}: solution line {line.strip()!r}")
    return leaks


SUBMIT_MD = """# Submitting this assignment

Implement the exercises below. Each one is a banner in the code that raises
`NotImplementedError` until you replace it:

{table}

Install this directory first (in a virtual environment; it compiles the
kernels, so it needs a C compiler): it gives you everything the chapters
import and the kernel that runs them, and the public tests.

    pip install -e ".[test,chapters]"

Open the chapters (`book/*.ipynb`) in Jupyter (`pip install jupyterlab`) or
any editor that runs notebooks. Check your work with the public tests (run
from this directory):

    python -m convlab.submit check

Passing them is a good sign, not the grade: hidden tests (other shapes, dtypes,
strides and paddings, inputs that must not be modified, and naive layers that
must not call the fast kernels) run at grading. Then make your submission:

    python -m convlab.submit collect

which writes `submission.zip` with exactly these files:

{files}
"""


def release(root, patterns, out, bundle=None):
    """Write the student's repository for the exercises matching ``patterns``.

    Parameters
    ----------
    root : path
        The instructor's repository.
    patterns : str
        Comma-separated globs of exercise ids (``'conv.*,pool.forward'``).
        Unassigned exercises keep their solutions.
    out : path
        New directory (must not exist, or be empty) for the student's tree.
    bundle : path or None
        New directory for the grader's bundle: the manifest and the hidden tests.

    Returns
    -------
    dict
        The manifest written to ``out/src/convlab/submit/assignment.json``.

    Raises
    ------
    ReleaseError
        For a bad pattern, an existing non-empty ``out``, or a leak (the tree is
        then deleted).
    """
    root, out = Path(root).resolve(), Path(out).resolve()
    for name, directory in (("--out", out), ("--bundle", bundle)):
        if directory is not None and Path(directory).exists() and any(Path(directory).iterdir()):
            raise ReleaseError(f"{name} {directory} exists and is not empty")
    files = repository_files(root)
    exercises = find_exercises(root, files)
    assigned = select(exercises, patterns)
    is_assigned = set(assigned).__contains__
    dropped = [path for path in files if _instructor_only(path)]
    for path in files:
        if _instructor_only(path):
            continue
        source, target = root / path, out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.endswith(MARKED_SUFFIXES):
            target.write_text(release_text(source.read_text(encoding="utf-8"), is_assigned, path), encoding="utf-8")
        elif path.endswith(".ipynb"):
            target.write_text(notebooks.release_notebook(source.read_text(encoding="utf-8"), is_assigned, path),
                              encoding="utf-8")
        elif path == "_toc.yml":
            target.write_text(_release_toc(source.read_text(encoding="utf-8"), dropped), encoding="utf-8")
        else:
            shutil.copyfile(source, target)
        shutil.copymode(source, target)
    manifest = {
        "exercises": {e: exercises[e] for e in assigned},
        "files": sorted({p["file"] for e in assigned for p in exercises[e] if p["file"].endswith(".py")}),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    table = "\n".join(f"- `{e}`: " + ", ".join(f"`{p['function']}` in `{p['file']}`" for p in exercises[e])
                      for e in assigned)
    (out / "SUBMIT.md").write_text(
        SUBMIT_MD.format(table=table, files="\n".join(f"- `{f}`" for f in manifest["files"])), encoding="utf-8")
    secrets = _secret_lines(root, files, exercises, set(assigned))
    leaks = leak_scan(out, secrets)
    if leaks:
        shutil.rmtree(out)
        kept = _kept_solutions_holding(root, files, set(assigned), secrets)
        hint = (f"\nthese lines are also in the solutions of {', '.join(kept)}, which the release keeps because "
                f"they are not assigned: assign them too (--assign '{patterns},{','.join(kept)}')" if kept else "")
        raise ReleaseError("the release leaked solutions and was deleted:\n  " + "\n  ".join(leaks) + hint)
    if bundle is not None:
        bundle = Path(bundle)
        shutil.copytree(root / "tests" / "hidden", bundle / "tests" / "hidden",
                        ignore=shutil.ignore_patterns("__pycache__"))
        (bundle / "assignment.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def solve(root, tree):
    """Put the solutions of the repository ``root`` back into the released ``tree``, in place.

    Returns
    -------
    list of str
        The paths that were restored.

    Raises
    ------
    MarkerError
        If a file was changed outside its exercises' banners.
    """
    root, tree = Path(root).resolve(), Path(tree).resolve()
    manifest = json.loads((tree / MANIFEST).read_text(encoding="utf-8"))
    is_assigned = set(manifest["exercises"]).__contains__
    restored = []
    for path in repository_files(root):
        target = tree / path
        if _instructor_only(path) or not target.is_file():
            continue
        source = (root / path).read_text(encoding="utf-8") if path.endswith(MARKED_SUFFIXES + (".ipynb",)) else None
        if path.endswith(MARKED_SUFFIXES):
            solved = solve_text(target.read_text(encoding="utf-8"), source, is_assigned, path)
        elif path.endswith(".ipynb"):
            solved = notebooks.solve_notebook(target.read_text(encoding="utf-8"), source, is_assigned, path)
        else:
            continue
        if solved != target.read_text(encoding="utf-8"):
            target.write_text(solved, encoding="utf-8")
            restored.append(path)
    return restored
