"""
Helpers shipped with the package for tests and tools: reading captures
(:mod:`realtime.testing.captures`), the ``realtime-replay`` command
(:mod:`realtime.testing.replay`).  Test-only code that needs pytest lives in
``tests/``; nothing here imports pytest.
"""
