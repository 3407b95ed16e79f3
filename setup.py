"""Build hook: the optional C helper of the SFU fan-out (metadata lives in setup.cfg).

``realtime/srtp/_fanout.c`` and ``realtime/net/_mmsg.c`` are compiled when the package is installed
(``make venv``: ``pip install -e .``).  It is ``optional``: without a C
compiler or Python's headers the build goes on without it and the fan-out
uses its Python send path (``realtime/srtp/fanout.py`` says which is in use).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("realtime.srtp._fanout", ["realtime/srtp/_fanout.c"], optional=True,
                  depends=["realtime/srtp/_fanout_send.h"],
                  extra_compile_args=["-O2", "-Wall"]),
        Extension("realtime.net._mmsg", ["realtime/net/_mmsg.c"], optional=True,
                  extra_compile_args=["-O2", "-Wall"]),
    ],
)
