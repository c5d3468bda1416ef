"""Base classes of the generated models.

Request models forbid unknown keys and validate on assignment, so a misspelt field is an error
before anything is sent. Response models keep unknown keys (``model_extra``), so a field the
server adds tomorrow never breaks parsing.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["RequestModel", "ResponseModel"]


class RequestModel(BaseModel):
    """Base of request models: unknown keys are an error, assignment is validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)


class ResponseModel(BaseModel):
    """Base of response models: unknown keys are kept, so a new server field never breaks parsing."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
