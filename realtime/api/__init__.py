"""
The Cloudflare-Realtime-compatible HTTPS API.

* :mod:`realtime.api.app` -- :class:`~realtime.api.app.RealtimeAPI`: its
  collaborators and the one table of every route (:meth:`~realtime.api.app.RealtimeAPI.routes`);
* :mod:`realtime.api.http` -- what every route shares (CORS, JSON, authentication);
* :mod:`realtime.api.sessions`, :mod:`~realtime.api.tracks`, :mod:`~realtime.api.datachannels`,
  :mod:`~realtime.api.echo`, :mod:`~realtime.api.diagnostics`, :mod:`~realtime.api.usage`,
  :mod:`~realtime.api.turn`, :mod:`~realtime.api.openapi` -- one route class per resource;
* :mod:`realtime.api.auth` -- bearer-token authentication of ``/apps/{appId}``;
* :mod:`realtime.api.errors` -- :class:`~realtime.api.errors.ApiError` and the
  ``errorCode`` strings.
"""
