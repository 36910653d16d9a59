"""The Stepping TM benchmark (issue #6): ``python -m bench`` / ``scripts/bench``.

See the README's Performance section and ``python -m bench --help``.
"""

__all__: list[str] = []
