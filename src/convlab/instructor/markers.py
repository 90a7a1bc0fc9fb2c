"""Solution markers in source text: find the blocks, stub them out, put them back.

An instructor marks the part of a function that students should write::

    def conv_forward_naive(x, w, b, conv_param):
        ...checks that stay in the student's copy...
        # BEGIN SOLUTION conv.forward
        ...the answer...
        # END SOLUTION

Released, the block becomes a banner around a ``raise``, indentation kept::

        # >>> exercise conv.forward: your code here >>>
        raise NotImplementedError("conv.forward: implement conv_forward_naive")
        # <<< end of exercise conv.forward <<<

A line ``# STUB: <code>`` inside the block replaces the ``raise`` by ``<code>``
(for a placeholder value). The same markers work in notebook code cells.
"""

import re
from dataclasses import dataclass

BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION(?:[ \t]+(?P<id>\S+))?[ \t]*$")
END = re.compile(r"^[ \t]*# END SOLUTION[ \t]*$")
STUB = re.compile(r"^[ \t]*# STUB:[ \t]?(?P<code>.*)$")
BANNER_BEGIN = re.compile(r"^(?P<indent>[ \t]*)# >>> exercise (?P<id>\S+): your code here >>>[ \t]*$")
BANNER_END = re.compile(r"^[ \t]*# <<< end of exercise (?P<id>\S+) <<<[ \t]*$")
EXERCISE_ID = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_DEF = re.compile(r"^(?P<indent>[ \t]*)(?:async[ \t]+)?(?P<kind>def|class)[ \t]+(?P<name>\w+)")


class MarkerError(ValueError):
    """Unbalanced, nested or badly named solution markers."""


@dataclass(frozen=True)
class Block:
    """One marked solution block of a source text.

    ``start`` and ``stop`` are 0-based line numbers of the BEGIN and END lines;
    ``lines`` are the lines strictly between them (with line endings).
    """

    exercise: str
    function: str
    start: int
    stop: int
    indent: str
    lines: tuple

    @property
    def stub_lines(self):
        """The ``# STUB:`` placeholder lines of the block, as code."""
        return [STUB.match(line)["code"] for line in self.lines if STUB.match(line)]


def find_blocks(text, where="<text>"):
    """The solution blocks of ``text``, in order.

    Parameters
    ----------
    text : str
        Python source (a module or a notebook cell).
    where : str
        Names the source in error messages.

    Returns
    -------
    list of Block

    Raises
    ------
    MarkerError
        If a BEGIN has no id or a malformed one, markers nest, an END has no
        BEGIN, or a BEGIN is never closed.
    """
    lines = text.splitlines(keepends=True)
    blocks, open_at = [], None
    for number, line in enumerate(lines):
        begin = BEGIN.match(line.rstrip("\r\n"))
        if begin:
            if open_at is not None:
                raise MarkerError(f"{where}:{number + 1}: BEGIN SOLUTION inside the block opened at line {open_at + 1}")
            exercise = begin["id"]
            if not exercise or not EXERCISE_ID.match(exercise):
                raise MarkerError(
                    f"{where}:{number + 1}: BEGIN SOLUTION needs an exercise id like 'conv.forward'; got {exercise!r}"
                )
            open_at, open_id, open_indent = number, exercise, begin["indent"]
        elif END.match(line.rstrip("\r\n")):
            if open_at is None:
                raise MarkerError(f"{where}:{number + 1}: END SOLUTION without a BEGIN SOLUTION")
            blocks.append(Block(open_id, enclosing_function(lines, open_at), open_at, number,
                                open_indent, tuple(lines[open_at + 1:number])))
            open_at = None
        elif "BEGIN SOLUTION" in line or "END SOLUTION" in line:
            raise MarkerError(f"{where}:{number + 1}: a marker must be a comment on a line of its own")
    if open_at is not None:
        raise MarkerError(f"{where}:{open_at + 1}: BEGIN SOLUTION {open_id} is never closed")
    return blocks


def enclosing_function(lines, number):
    """Dotted name (``Class.method``) of the def that contains line ``number``, or ``"this cell"``."""
    names, limit = [], len(lines[number]) - len(lines[number].lstrip())
    for line in reversed(lines[:number]):
        match = _DEF.match(line)
        if match and len(match["indent"]) < limit:
            names.append(match["name"])
            limit = len(match["indent"])
            if limit == 0:
                break
    return ".".join(reversed(names)) or "this cell"


def stub_text(exercise, function, indent, placeholder=()):
    """The released lines that stand where a solution block was."""
    body = list(placeholder) or [f'raise NotImplementedError("{exercise}: implement {function}")']
    return "".join(
        [f"{indent}# >>> exercise {exercise}: your code here >>>\n"]
        + [f"{indent}{line}\n" for line in body]
        + [f"{indent}# <<< end of exercise {exercise} <<<\n"]
    )


def release_text(text, assigned, where="<text>"):
    """``text`` with the blocks of assigned exercises stubbed and every marker removed.

    Unassigned blocks keep their solution (later chapters need them); only their
    marker lines go.

    Parameters
    ----------
    text : str
    assigned : callable
        ``assigned(exercise_id) -> bool``.
    where : str
        Names the source in error messages.

    Returns
    -------
    str
    """
    lines = text.splitlines(keepends=True)
    out, position = [], 0
    for block in find_blocks(text, where):
        out.extend(lines[position:block.start])
        if assigned(block.exercise):
            out.append(stub_text(block.exercise, block.function, block.indent, block.stub_lines))
        else:
            out.extend(line for line in block.lines if not STUB.match(line))
        position = block.stop + 1
    out.extend(lines[position:])
    return "".join(out)


def skeleton(text):
    """``text`` with every exercise's banner region reduced to its first line."""
    out, inside = [], False
    for line in text.splitlines(keepends=True):
        if BANNER_BEGIN.match(line.rstrip("\r\n")):
            out.append(line)
            inside = True
        elif inside and BANNER_END.match(line.rstrip("\r\n")):
            inside = False
        elif not inside:
            out.append(line)
    return "".join(out)


def solve_text(released, source, assigned, where="<text>"):
    """The source of a released text: its solutions and markers put back.

    The released text may hold anything between its banners (the stub, or a
    student's answer); everything else must be as released, so that the
    source can stand in for it.

    Parameters
    ----------
    released : str
    source : str
        The marked text ``released`` was made from.
    assigned : callable
        ``assigned(exercise_id) -> bool``, as at release.
    where : str
        Names the text in error messages.

    Returns
    -------
    str
        ``source``: releasing it and solving the result is the identity.

    Raises
    ------
    MarkerError
        If ``released`` differs from the release of ``source`` outside the banners.
    """
    if skeleton(released) != skeleton(release_text(source, assigned, where)):
        raise MarkerError(f"{where} was changed outside its exercises' banners; cannot put the solutions back")
    return source
