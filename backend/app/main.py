"""HTTP interface of the ContextCleanse backend."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from app import buildinfo
from app.classify import classify
from app.limits import BodyLimit

MAX_SUBJECT_CHARS = 1_000
MAX_BODY_CHARS = 100_000


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    revision: str
    built: str


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str = Field(max_length=MAX_SUBJECT_CHARS, description="Subject line of the e-mail.")
    body: str = Field(max_length=MAX_BODY_CHARS, description="Plain-text body of the e-mail.")


class ReasonOut(BaseModel):
    rule: str = Field(description="Id of the rule that fired.")
    weight: float = Field(ge=0.0, le=1.0, description="How much this rule adds to the score.")
    detail: str = Field(description="Why the rule fired, for people.")


class ClassifyResponse(BaseModel):
    score: float = Field(ge=0.0, le=1.0)
    label: Literal["spam", "ham"]
    reasons: list[ReasonOut]


def health() -> Health:
    info = buildinfo.current()
    return Health(status="ok", version=info.version, revision=info.revision, built=info.built)


def classify_message(request: ClassifyRequest) -> ClassifyResponse:
    verdict = classify(request.subject, request.body)
    return ClassifyResponse(
        score=verdict.score,
        label=verdict.label,
        reasons=[ReasonOut(rule=r.rule, weight=r.weight, detail=r.detail) for r in verdict.reasons],
    )


def docs_enabled(env: Mapping[str, str]) -> bool:
    """The interactive docs (/docs, /redoc, /openapi.json) are for development only: the
    `development` image sets APP_DOCS=1; the production image leaves it unset."""
    return env.get("APP_DOCS", "").strip() == "1"


# Names a validation error may show in its `loc`: the request's parts and the model's fields.
# Anything else there (an unexpected key) came from the client and is not echoed.
KNOWN_LOCATIONS = {"body", "query", "path", "header", "cookie", *ClassifyRequest.model_fields}


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """A 422 that says where and what is wrong, never what was sent: FastAPI's default answer
    carries each error's `input`, which is the client's own data, however large."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [
        {
            "loc": [p if isinstance(p, int) or p in KNOWN_LOCATIONS else "(unexpected field)" for p in e.get("loc", ())],
            "msg": e.get("msg", ""),
            "type": e.get("type", ""),
        }
        for e in errors
    ]
    return JSONResponse(status_code=422, content={"detail": detail})


def create_app(docs: bool) -> FastAPI:
    application = FastAPI(
        title="ContextCleanse backend",
        description="Scores e-mails as spam or ham with a small, transparent rule set.",
        version=buildinfo.current().version,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    application.add_middleware(BodyLimit)
    application.add_exception_handler(RequestValidationError, validation_error)
    application.add_api_route("/health", health, methods=["GET"], response_model=Health)
    application.add_api_route(
        "/api/v1/classify", classify_message, methods=["POST"], response_model=ClassifyResponse
    )
    return application


app = create_app(docs=docs_enabled(os.environ))
