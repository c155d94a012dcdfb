"""Dependencies of the routes: a read session, the RPC client, Redis, the user cache."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from api_gateway.rpc_client import RpcClient
from api_gateway.user_directory import UserDirectory


async def read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session for queries; the gateway never writes to PostgreSQL."""
    async with request.app.state.sessions() as session:
        yield session


async def rpc_client(request: Request) -> RpcClient:
    client: RpcClient = request.app.state.rpc
    return client


async def user_directory(request: Request) -> UserDirectory:
    directory: UserDirectory = request.app.state.users
    return directory


async def redis_client(request: Request) -> Redis:
    client: Redis = request.app.state.redis
    return client


SessionDep = Annotated[AsyncSession, Depends(read_session)]
RpcDep = Annotated[RpcClient, Depends(rpc_client)]
RedisDep = Annotated[Redis, Depends(redis_client)]
UsersDep = Annotated[UserDirectory, Depends(user_directory)]
