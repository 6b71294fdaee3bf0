"""The web console: a single-page app over the public HTTP API, and its browser sessions.

``sessions`` keeps sign-in sessions (a cookie instead of a key in the browser); ``serve``
mounts the built app (``console/`` at the repo root, built by ``make``) at ``/``.
"""
