"""The EC2-compatible service: SigV4, the EC2 Query protocol, a JSON API, the ASGI app.

``create_app(ServiceContext(store, regions=...))`` is the whole server; ``kdiag serve`` runs
it under uvicorn.  Modules: :mod:`~kdiag.service.sigv4` (signature verification),
:mod:`~kdiag.service.keys` (access keys for it, cached), :mod:`~kdiag.service.ratelimit`
(per-principal token buckets), :mod:`~kdiag.service.context` (the shared state and
authentication), :mod:`~kdiag.service.actions` (each action over the use-case layer, after
:func:`kdiag.authz.authorize`), :mod:`~kdiag.service.ec2` (Query protocol and XML),
:mod:`~kdiag.service.rest` and :mod:`~kdiag.service.openapi` (the ``/v1`` JSON API),
:mod:`~kdiag.service.errors` (the error envelope), :mod:`~kdiag.service.audit` (one audit
row per request), :mod:`~kdiag.service.wire` (the request as received) and
:mod:`~kdiag.service.app` (the Starlette app).
"""

from kdiag.service.app import create_app
from kdiag.service.context import ServiceContext

__all__ = ("ServiceContext", "create_app")
