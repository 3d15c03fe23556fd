"""pytest setup of this workspace (you need not change it).

``student`` is the module a test file grades (test_ch01_autodiff.py grades ch01_autodiff.py);
``time_limit`` stops an exercise that runs too long while an instructor grades.
"""
from minideep.classroom.check import student, time_limit  # noqa: F401 - pytest fixtures
