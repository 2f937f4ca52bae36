"""Code the tests share, and nothing else: no test module is imported by another.

The test modules import these as ``helpers.<module>`` (pytest puts ``tests/`` on ``sys.path``);
``bench`` imports ``tests.helpers.postgres`` and ``tests.helpers.reference`` from the project root.
A helper imports no test module and no ``conftest``.
"""
