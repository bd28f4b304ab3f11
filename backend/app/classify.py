"""A small, transparent rule set that scores an e-mail as spam or ham.

Every rule looks at the subject and body and, when it fires, contributes a
weight in (0, 1) together with a human-readable explanation. The weights are
combined like independent pieces of evidence ("noisy OR"):

    score = 1 - (1 - w1) * (1 - w2) * ...

so the score always stays within 0..1, one weak signal alone stays low, and
several signals together push the score towards 1. A message whose score
reaches SPAM_THRESHOLD is labelled "spam".

The module has no I/O and no dependency on the web framework.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Literal

SPAM_THRESHOLD = 0.5

Label = Literal["spam", "ham"]


@dataclass(frozen=True)
class Reason:
    """One rule that fired: its id, its weight and why it fired."""

    rule: str
    weight: float
    detail: str


@dataclass(frozen=True)
class Verdict:
    score: float
    label: Label
    reasons: list[Reason]


def _phrases(*words: str) -> re.Pattern[str]:
    """Case-insensitive pattern matching any of the phrases as whole words."""
    alternatives = "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in words)
    return re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)


URGENCY = _phrases(
    "urgent",
    "act now",
    "immediately",
    "limited time",
    "last chance",
    "final notice",
    "expires today",
    "within 24 hours",
    "don't miss out",
    "respond now",
)

MONEY_OFFER = _phrases(
    "free money",
    "cash prize",
    "you have won",
    "you've won",
    "winner",
    "lottery",
    "claim your prize",
    "claim your reward",
    "million dollars",
    "wire transfer",
    "risk-free",
    "guaranteed income",
    "double your money",
    "100% free",
)
MONEY_AMOUNT = re.compile(
    r"[$€£]\s?\d+(?:[.,]\d+)*(?:\s?(?:million|billion|k|m)\b)?", re.IGNORECASE
)

CREDENTIALS = _phrases(
    "verify your account",
    "confirm your password",
    "update your payment",
    "login details",
    "account suspended",
    "account will be closed",
    "social security number",
    "bank details",
)

URL = re.compile(r"\bhttps?://[^\s<>\"')]+", re.IGNORECASE)
URL_SHORTENERS = frozenset({"bit.ly", "tinyurl.com", "goo.gl", "t.co", "ow.ly", "is.gd", "buff.ly"})
IP_HOST = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?$")


def _found(pattern: re.Pattern[str], text: str) -> list[str]:
    """Distinct matches of pattern in text, lower-cased, in order of first appearance."""
    seen: dict[str, None] = {}
    for match in pattern.finditer(text):
        seen.setdefault(" ".join(match.group(0).lower().split()), None)
    return list(seen)


def _quoted(items: list[str], limit: int = 3) -> str:
    shown = ", ".join(f"'{item}'" for item in items[:limit])
    return shown + (", ..." if len(items) > limit else "")


# Each rule takes (subject, body, text) where text is subject and body joined,
# and returns None or a Reason.
Rule = Callable[[str, str, str], Reason | None]


def rule_urgency(subject: str, body: str, text: str) -> Reason | None:
    hits = _found(URGENCY, text)
    if not hits:
        return None
    return Reason("urgency", 0.25, f"pressure to act quickly: {_quoted(hits)}")


def rule_money_offer(subject: str, body: str, text: str) -> Reason | None:
    hits = _found(MONEY_OFFER, text)
    amounts = _found(MONEY_AMOUNT, text)
    if not hits:
        return None
    detail = f"offers money or prizes: {_quoted(hits)}"
    if amounts:
        detail += f" (amounts {_quoted(amounts)})"
        return Reason("money_offer", 0.45, detail)
    return Reason("money_offer", 0.35, detail)


def rule_credentials(subject: str, body: str, text: str) -> Reason | None:
    hits = _found(CREDENTIALS, text)
    if not hits:
        return None
    return Reason("credentials", 0.4, f"asks for account or payment details: {_quoted(hits)}")


def rule_shouting(subject: str, body: str, text: str) -> Reason | None:
    letters = [c for c in text if c.isalpha()]
    if len(letters) < 12:
        return None
    ratio = sum(c.isupper() for c in letters) / len(letters)
    subject_letters = [c for c in subject if c.isalpha()]
    subject_shouts = len(subject_letters) >= 8 and all(c.isupper() for c in subject_letters)
    if ratio >= 0.5:
        return Reason("shouting", 0.2, f"{ratio:.0%} of the letters are capitals")
    if subject_shouts:
        return Reason("shouting", 0.15, "the subject is written in capitals only")
    return None


def rule_exclamation(subject: str, body: str, text: str) -> Reason | None:
    count = text.count("!")
    repeated = "!!" in text
    if count >= 3 or repeated:
        return Reason("exclamation", 0.15, f"{count} exclamation marks")
    return None


def rule_suspicious_links(subject: str, body: str, text: str) -> Reason | None:
    problems: list[str] = []
    for url in _found(URL, text):
        host = url.split("://", 1)[1].split("/", 1)[0]
        if "@" in host:
            problems.append(f"{url} hides its real host behind '@'")
            host = host.rsplit("@", 1)[1]
        if IP_HOST.match(host):
            problems.append(f"{url} points at a bare IP address")
        elif host.split(":", 1)[0] in URL_SHORTENERS:
            problems.append(f"{url} uses a link shortener")
    if not problems:
        return None
    return Reason("suspicious_links", 0.3, "; ".join(problems[:3]))


def rule_many_links(subject: str, body: str, text: str) -> Reason | None:
    count = len(URL.findall(text))
    if count <= 3:
        return None
    return Reason("many_links", 0.1, f"{count} links in one message")


RULES: tuple[Rule, ...] = (
    rule_urgency,
    rule_money_offer,
    rule_credentials,
    rule_shouting,
    rule_exclamation,
    rule_suspicious_links,
    rule_many_links,
)


def combine(weights: list[float]) -> float:
    """Noisy-OR combination of independent weights, rounded for stable output."""
    remaining = 1.0
    for weight in weights:
        remaining *= 1.0 - weight
    return round(1.0 - remaining, 4)


def classify(subject: str, body: str) -> Verdict:
    """Score one message. Pure: same input, same output."""
    text = f"{subject}\n{body}"
    reasons = [reason for rule in RULES if (reason := rule(subject, body, text)) is not None]
    score = combine([reason.weight for reason in reasons])
    label: Label = "spam" if score >= SPAM_THRESHOLD else "ham"
    return Verdict(score=score, label=label, reasons=reasons)
