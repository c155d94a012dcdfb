from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, created_at_column


class UserKind(StrEnum):
    """People log in through GitHub; nodes and services hold long-lived tokens."""

    USER = "user"
    NODE = "node"
    SERVICE = "service"
    SIGN_NODE = "sign_node"


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(Text, unique=True)
    email: Mapped[str] = mapped_column(Text)
    github_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    kind: Mapped[str] = mapped_column(Text, default=UserKind.USER, server_default=UserKind.USER)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    # Bumping it revokes every token issued before.
    token_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = created_at_column()
