"""
schemathesis hooks for tests/interop/test_schemathesis.py (``SCHEMATHESIS_HOOKS``).

The WHIP/WHEP routes (realtime/api/whip.py) take SDP bodies: ``application/sdp``
and ``application/trickle-ice-sdpfrag`` (RFC 8840) are text, sent as they are
generated, like ``text/plain``; without a serializer schemathesis reports
"Serialization not possible" and never calls those operations.
"""

import schemathesis

schemathesis.serializer.alias(["application/sdp", "application/trickle-ice-sdpfrag"],
                              "text/plain")
