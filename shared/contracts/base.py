"""Base classes for wire models."""

from pydantic import BaseModel, ConfigDict


class WireModel(BaseModel):
    """A body or payload on the wire: frozen, and tolerant of fields added by newer peers."""

    model_config = ConfigDict(frozen=True, extra="ignore")
