"""
``twistd realtime``: options and the service tree (placeholder, filled in by
the foundation work).
"""

from twisted.application.service import MultiService
from twisted.python import usage


class Options(usage.Options):
    """Command-line options of ``twistd realtime``."""


def makeService(options: Options) -> MultiService:
    """Build the realtime service tree from parsed options."""
    return MultiService()
