"""
Twisted application plugin: makes ``twistd realtime`` available.

Twisted discovers plugins by importing every module in any ``twisted/plugins``
directory on ``sys.path`` and collecting objects that provide
:class:`twisted.plugin.IPlugin`.  This directory has no ``__init__.py`` on
purpose: it must merge with Twisted's own ``twisted.plugins`` package.
"""

from twisted.application.service import ServiceMaker

realtime = ServiceMaker(
    "realtime",
    "realtime.service",
    "WebRTC SFU, TURN server and Cloudflare Realtime compatible HTTPS API.",
    "realtime",
)
