"""The course kit: turn the book's chapters and package into an assignment, and grade it.

Modules
-------
markers      ``# BEGIN SOLUTION <id>`` ... ``# END SOLUTION`` blocks: find, stub, restore
notebooks    the same for chapters, plus the ``solution`` and ``instructor`` cell tags
release      check the repository, write a student's tree and a grader's bundle, leak scan, solve
splice       one exercise of a submission grafted onto the reference module
sandbox      the grader's subprocess: one exercise's tests, one event line per test
guard        the fast layers made to raise, so a naive answer cannot delegate to them
grade        grade many submissions: statuses, points, JSON, CSV and a table

Command line: ``python -m convlab.instructor check | release | solve | grade`` (see ``--help``).
This package and ``tests/hidden`` never ship to students.
"""
