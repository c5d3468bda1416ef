"""Base classes of the generated models.

Request models forbid unknown keys, so a misspelt field is an error before anything is sent, and
are frozen: a request is checked once, when it is built, and cannot be changed afterwards into
one that would not pass (build a new one instead). Their list fields hold tuples
(`kalshi_proto.types.AsTuple`), so the lists inside cannot change either. One way around the
checks remains, by pydantic's design: ``model_copy(update=...)`` does not validate, so a request
changed that way is sent unchecked; use the constructor or ``model_validate``. Response models
keep unknown keys (``model_extra``), so a field the server adds tomorrow never breaks parsing.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

__all__ = ["RequestModel", "ResponseModel"]


class RequestModel(BaseModel):
    """Base of request models: unknown keys are an error; instances are immutable."""

    model_config: ClassVar[ConfigDict] = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True
    )


class ResponseModel(BaseModel):
    """Base of response models: unknown keys are kept, so a new server field never breaks parsing."""

    model_config: ClassVar[ConfigDict] = ConfigDict(extra="allow", populate_by_name=True)
