"""The kdiag console: the fleet, its drills and its crashes in a browser, under ``/console``.

Server-rendered pages (Starlette + Jinja2, SVG charts drawn on the server, one small script
for live updates only), signed in with an access key and authorized by the user's IAM
policies through :mod:`kdiag.authz`.  :mod:`kdiag.console.app` holds the routes (mounted by
:func:`kdiag.service.create_app`), :mod:`~kdiag.console.security` the sign-in, cookie and
CSRF defences, :mod:`~kdiag.console.sources` what the pages show, :mod:`~kdiag.console.charts`
the SVG charts.  See ``docs/console.md``.
"""

__all__ = ()
