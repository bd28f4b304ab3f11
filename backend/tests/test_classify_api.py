import pytest

from app.main import MAX_BODY_CHARS, MAX_SUBJECT_CHARS

URL = "/api/v1/classify"

SPAM = {
    "subject": "URGENT: YOU HAVE WON A CASH PRIZE!!!",
    "body": (
        "Congratulations winner! Claim your prize of $1,000,000 now. "
        "Act now, this offer expires today. Verify your account at http://192.168.4.7/claim"
    ),
}

HAM = {
    "subject": "Notes from Tuesday's planning meeting",
    "body": (
        "Hi all, attached are the notes from the meeting. "
        "Please review the roadmap section before Friday. Thanks, Maria"
    ),
}


def test_spam_example(client):
    response = client.post(URL, json=SPAM)
    assert response.status_code == 200
    data = response.json()
    assert data["label"] == "spam"
    assert 0.5 <= data["score"] <= 1.0
    rules = {reason["rule"] for reason in data["reasons"]}
    assert {"urgency", "money_offer", "credentials", "suspicious_links"} <= rules
    for reason in data["reasons"]:
        assert set(reason) == {"rule", "weight", "detail"}
        assert 0.0 < reason["weight"] < 1.0
        assert reason["detail"]


def test_ham_example(client):
    response = client.post(URL, json=HAM)
    assert response.status_code == 200
    assert response.json() == {"score": 0.0, "label": "ham", "reasons": []}


def test_empty_strings_are_valid_ham(client):
    response = client.post(URL, json={"subject": "", "body": ""})
    assert response.status_code == 200
    assert response.json()["label"] == "ham"


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"subject": "hello"},
        {"body": "hello"},
        {"subject": None, "body": "hello"},
        {"subject": 42, "body": "hello"},
        {"subject": "hello", "body": ["a", "list"]},
        {"subject": "hello", "body": "hello", "unexpected": True},
        {"subject": "x" * (MAX_SUBJECT_CHARS + 1), "body": "hello"},
        {"subject": "hello", "body": "x" * (MAX_BODY_CHARS + 1)},
    ],
    ids=[
        "empty",
        "missing-body",
        "missing-subject",
        "null-subject",
        "number-subject",
        "list-body",
        "extra-field",
        "subject-too-long",
        "body-too-long",
    ],
)
def test_invalid_payloads_are_rejected(client, payload):
    response = client.post(URL, json=payload)
    assert response.status_code == 422
    assert "detail" in response.json()


def test_malformed_json_is_rejected(client):
    response = client.post(URL, content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_limits_are_inclusive(client):
    payload = {"subject": "x" * MAX_SUBJECT_CHARS, "body": "y" * 1000}
    assert client.post(URL, json=payload).status_code == 200


def test_classify_requires_post(client):
    assert client.get(URL).status_code == 405
