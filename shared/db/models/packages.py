from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base


class SourceRpm(Base):
    __tablename__ = "source_rpms"

    id: Mapped[int] = mapped_column(primary_key=True)
    build_id: Mapped[int] = mapped_column(ForeignKey("builds.id", ondelete="CASCADE"), index=True)
    artifact_id: Mapped[int] = mapped_column(
        ForeignKey("build_artifacts.id", ondelete="CASCADE"), unique=True
    )


class BinaryRpm(Base):
    __tablename__ = "binary_rpms"

    id: Mapped[int] = mapped_column(primary_key=True)
    build_id: Mapped[int] = mapped_column(ForeignKey("builds.id", ondelete="CASCADE"), index=True)
    artifact_id: Mapped[int] = mapped_column(
        ForeignKey("build_artifacts.id", ondelete="CASCADE"), unique=True
    )
    # A failed build may upload binaries without their source RPM.
    source_rpm_id: Mapped[int | None] = mapped_column(
        ForeignKey("source_rpms.id", ondelete="CASCADE"), index=True
    )
