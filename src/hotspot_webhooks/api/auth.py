"""Who is calling: ``Authorization: Bearer <token>`` or the original platform's ``sn-apikey``.

Routes declare ``CallerDep`` and hand the caller to the service, which decides what it may see.
A client address that fails too often is locked out for a while (``lockout``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from ..errors import TooManyRequests, Unauthorized
from ..service import Caller, Service
from .lockout import FailedAuthLimit

bearer = HTTPBearer(
    auto_error=False,
    description="An operator or admin token: `Authorization: Bearer hwt_...`.",
)
sn_apikey = APIKeyHeader(
    name="sn-apikey",
    auto_error=False,
    description="The same token in the original platform's header: `sn-apikey: hwt_...`.",
)


async def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


async def current_caller(
    request: Request,
    service: ServiceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    api_key: Annotated[str | None, Depends(sn_apikey)],
) -> Caller:
    limit: FailedAuthLimit = request.app.state.failed_auth
    address = request.client.host if request.client else ""
    wait = limit.retry_after(address)
    if wait is not None:
        raise TooManyRequests(
            f"too many requests with a token that is not valid from {address}; "
            f"try again in {wait} s with a valid token",
            retry_after=wait,
        )
    if credentials is None and api_key is None and "authorization" in request.headers:
        raise Unauthorized("the Authorization header must read 'Bearer <token>'")
    token = credentials.credentials if credentials else api_key
    try:
        return await service.access.authenticate(token)
    except Unauthorized:
        if token:  # a token that is not valid; a missing one guesses nothing
            limit.failed(address)
        raise


CallerDep = Annotated[Caller, Depends(current_caller)]
