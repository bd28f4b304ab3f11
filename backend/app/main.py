"""HTTP interface of the ContextCleanse backend."""

from __future__ import annotations

from typing import Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from app import buildinfo
from app.classify import classify

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


app = FastAPI(
    title="ContextCleanse backend",
    description="Scores e-mails as spam or ham with a small, transparent rule set.",
    version=buildinfo.current().version,
)


@app.get("/health", response_model=Health)
def health() -> Health:
    info = buildinfo.current()
    return Health(status="ok", version=info.version, revision=info.revision, built=info.built)


@app.post("/api/v1/classify", response_model=ClassifyResponse)
def classify_message(request: ClassifyRequest) -> ClassifyResponse:
    verdict = classify(request.subject, request.body)
    return ClassifyResponse(
        score=verdict.score,
        label=verdict.label,
        reasons=[ReasonOut(rule=r.rule, weight=r.weight, detail=r.detail) for r in verdict.reasons],
    )
