"""Exercises in class: a workspace of stubs that students fill in and pytest grades.

    python -m minideep.classroom new DIR                   # a student's workspace
    pytest DIR                                             # the student grades their work
    python -m minideep.classroom grade SUBMISSIONS --csv marks.csv   # the instructor grades everyone

A workspace holds one file of stubs per chapter (``ch01_autodiff.py``: your own Sin, Exp,
Sigmoid, ``sum_to`` and matmul's backward; ``ch03_vgg38.py``: im2col convolution, max
pooling's and batch norm's backward, a residual block; ...) and a test file per chapter. The
tests (``minideep.classroom.check``) grade each exercise with ``md.gradcheck`` and against
minideep's own op, on generated shapes. ``grade`` runs fresh copies of those tests on every
student's files, each student in a subprocess with a time limit. See the site page
"Exercises in class".
"""
from .grader import Result, exercises, grade, grade_submission
from .workspace import new_workspace

__all__ = ["Result", "exercises", "grade", "grade_submission", "new_workspace"]
