"""The course kit: turn the book's chapters and package into an assignment, and grade it.

Modules
-------
course       which course repository a command works on
chapters     run a released chapter until its first stub
markers      ``# BEGIN SOLUTION <id>`` ... ``# END SOLUTION`` blocks: find, stub, restore
notebooks    the same for chapters, plus the ``solution`` and ``instructor`` cell tags
release      check the repository, write a student's tree and a grader's bundle, leak scan, solve
splice       a submission's functions grafted onto the released module
grade        grade many submissions: packages per submission, a judge per exercise, records, summary
judge        the trusted side of one exercise: the tests, with the student's functions as proxies
worker       the untrusted side: the submission's code, answering the judge's calls
wire         what crosses between judge and worker: plain data and raw array bytes, never pickle
isolation    the worker's sandbox: bubblewrap, or process limits where it cannot run
guard        the fast layers made to raise in-process (the hidden tests' check of the reference)
integrity    the grader's key and the signatures on grade records
gradebook    student feedback by visibility, roster, due time, summary.csv
gradescope   a Gradescope autograder zip and its results.json

Command line: ``python -m convlab.instructor check | release | solve | grade | gradescope`` (see ``--help``).
This package and ``tests/hidden`` never ship to students.
"""
