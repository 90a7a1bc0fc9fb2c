"""A submission's code for some exercises, grafted onto the module the students were given.

The grader builds each submission's package from the released tree (the
assigned exercises stubbed): for every exercise, the student's definitions of
its functions are appended to the released module (they rebind the stubs),
with the student's own additions (new helpers, imports and other top-level
statements). A broken exercise, even one with a syntax error, leaves its stub
in place and costs only the exercises that call it.
"""

import ast
import re
from dataclasses import dataclass


class SpliceError(ValueError):
    """The submission's code for an exercise is missing or does not parse."""


@dataclass
class Chunk:
    """One top-level statement of a module (with its decorators and leading comments)."""

    names: set
    kind: str  # "def", "import", "assign", "other" or "broken"
    text: str
    error: str = ""


def _names(node):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}, "def"
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(alias.asname or alias.name).split(".")[0] for alias in node.names}, "import"
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}, "assign"
    return set(), "other"


_START = re.compile(r"^(@|def |async def |class |import |from |[A-Za-z_]\w*\s*(:|=|\+=))")
_HEADER = re.compile(r"^(?:async +)?(?:def|class) +(\w+)")


def chunks(text):
    """The top-level statements of a module's source, even one with syntax errors.

    When the whole text parses, Python's own parser splits it. Otherwise each
    line at column 0 that starts a definition, an import or an assignment
    starts a chunk, and each chunk is parsed alone: a syntax error then
    breaks only its own chunk.
    """
    lines = text.splitlines(keepends=True)
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return _chunks_by_lines(lines)
    found = []
    for node in tree.body:
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
        names, kind = _names(node)
        found.append(Chunk(names, kind, "".join(lines[first:node.end_lineno])))
    return found


def _chunks_by_lines(lines):
    starts = []
    for number, line in enumerate(lines):
        if _START.match(line) and not (starts and lines[starts[-1]].startswith("@") and number == _after_decorators(lines, starts[-1])):
            starts.append(number)
    found = []
    for begin, end in zip(starts, starts[1:] + [len(lines)]):
        text = "".join(lines[begin:end])
        try:
            tree = ast.parse(text)
        except SyntaxError as err:
            header = next((_HEADER.match(l) for l in lines[begin:end] if _HEADER.match(l)), None)
            found.append(Chunk({header[1]} if header else set(), "broken", text,
                               f"line {begin + (err.lineno or 1)}: {err.msg}"))
            continue
        for node in tree.body:
            names, kind = _names(node)
            found.append(Chunk(names, kind, text))
    return found


def _after_decorators(lines, start):
    """Line number of the def or class that the decorators starting at ``start`` belong to."""
    number = start
    while number < len(lines) and lines[number].startswith("@"):
        number += 1
    return number


def splice(reference, submission, names, where):
    """The reference module with the submission's top-level definitions ``names`` grafted on.

    Parameters
    ----------
    reference : str
        The instructor's module source.
    submission : str
        The student's version of the same module.
    names : iterable of str
        Top-level names (functions or classes) of the exercise.
    where : str
        The file, for error messages.

    Returns
    -------
    str
        Module source: ``reference``, then the submission's new imports, helpers
        and constants (names the reference lacks) and top-level statements the
        reference does not have (a ``sys.exit()`` at import runs as it would in
        the student's module), then its definitions of ``names``.

    Raises
    ------
    SpliceError
        If the submission lacks one of ``names`` or one of them does not parse.
    """
    known = set().union(*(c.names for c in chunks(reference)))
    student = chunks(submission)
    wanted = []
    for name in names:
        defining = [c for c in student if name in c.names and c.kind in ("def", "broken")]
        if not defining:
            raise SpliceError(f"{where}: the submission has no definition of {name}")
        if defining[-1].kind == "broken":
            raise SpliceError(f"{where}: {name} does not parse ({defining[-1].error})")
        wanted.append(defining[-1])
    additions = [c for c in student if (c.kind in ("def", "import", "assign") and c.names and not c.names & known)
                 or (c.kind == "other" and c.text.strip() not in reference)]
    parts = [reference.rstrip("\n"), "\n\n\n# ---- the submission's code ----\n"]
    parts += [c.text.rstrip("\n") + "\n\n\n" for c in additions + wanted]
    return "".join(parts)
