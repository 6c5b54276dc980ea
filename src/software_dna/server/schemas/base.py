"""The two bases of every body: requests (strict, unknown fields refused) and answers."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["OkOut", "Out", "Strict"]


class Strict(BaseModel):
    """Base of request bodies: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    """Base of response bodies; an answer about a row is ``Model.model_validate(row)``."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)


class OkOut(Out):
    """A plain acknowledgement."""

    ok: bool = True
