"""
The Cloudflare-Realtime-compatible HTTPS API.

* :mod:`realtime.api.app` -- :class:`~realtime.api.app.RealtimeAPI`, the Klein
  app, and :func:`~realtime.api.app.app_route` for adding routes;
* :mod:`realtime.api.auth` -- bearer-token authentication of ``/apps/{appId}``;
* :mod:`realtime.api.errors` -- :class:`~realtime.api.errors.ApiError` and the
  ``errorCode`` strings.
"""
