import pytest

from app.classify import RULES, SPAM_THRESHOLD, classify, combine


def rules_of(subject: str, body: str) -> set[str]:
    return {reason.rule for reason in classify(subject, body).reasons}


def test_plain_message_is_ham_with_no_reasons():
    verdict = classify("Lunch on Thursday?", "Shall we try the new place near the office?")
    assert verdict.label == "ham"
    assert verdict.score == 0.0
    assert verdict.reasons == []


def test_obvious_spam_is_spam():
    verdict = classify(
        "FINAL NOTICE!!!",
        "You have won the lottery: $5,000,000. Wire transfer fee required, "
        "confirm your password at https://bit.ly/abc within 24 hours.",
    )
    assert verdict.label == "spam"
    assert verdict.score >= SPAM_THRESHOLD
    assert verdict.score <= 1.0


def test_classify_is_deterministic():
    args = ("Act now", "Claim your prize of $500")
    assert classify(*args) == classify(*args)


def test_one_weak_signal_stays_ham():
    verdict = classify("Reminder", "The survey closes immediately after the meeting.")
    assert [r.rule for r in verdict.reasons] == ["urgency"]
    assert verdict.label == "ham"


@pytest.mark.parametrize(
    ("subject", "body", "rule"),
    [
        ("Act NOW", "", "urgency"),
        ("", "This is your last  chance to register.", "urgency"),
        ("", "You've won a cash prize", "money_offer"),
        ("", "Please verify your account details", "credentials"),
        ("THIS IS VERY IMPORTANT NEWS", "", "shouting"),
        ("", "WE ARE SHOUTING AT YOU ALL DAY long", "shouting"),
        ("Hello", "Wow!!", "exclamation"),
        ("Hi", "One! Two! Three!", "exclamation"),
        ("", "see http://10.0.0.1/login", "suspicious_links"),
        ("", "see https://tinyurl.com/xyz", "suspicious_links"),
        ("", "see http://paypal.com@evil.example/login", "suspicious_links"),
        ("", " ".join(f"https://example.org/{i}" for i in range(5)), "many_links"),
    ],
)
def test_each_rule_fires(subject, body, rule):
    assert rule in rules_of(subject, body)


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("Urgently needed", ""),  # whole words only: "urgently" is not "urgent"
        ("Winnerless", ""),
        ("NASA", "A short acronym is not shouting."),
        ("Hi!", "Great news!"),
        ("", "docs at https://docs.example.org/guide"),
    ],
)
def test_rules_do_not_fire_on_ordinary_text(subject, body):
    assert rules_of(subject, body) == set()


def test_money_amount_raises_the_weight():
    without = classify("", "You are a winner").reasons[0]
    with_amount = classify("", "You are a winner of $1000").reasons[0]
    assert with_amount.rule == without.rule == "money_offer"
    assert with_amount.weight > without.weight
    assert "$1000" in with_amount.detail


@pytest.mark.parametrize(
    ("body", "amount"),
    [
        ("You are a winner of $500, congratulations", "$500"),
        ("You are a winner of $1,000,000.", "$1,000,000"),
        ("Lottery jackpot: €2.5 million!", "€2.5 million"),
        ("Cash prize of £10k waiting", "£10k"),
        ("Winner: $5 more to claim", "$5"),
    ],
)
def test_money_amounts_are_quoted_exactly(body, amount):
    (reason,) = [r for r in classify("", body).reasons if r.rule == "money_offer"]
    assert f"'{amount}'" in reason.detail


def test_reason_details_quote_the_evidence():
    (reason,) = classify("", "This is urgent, act now").reasons
    assert "'urgent'" in reason.detail and "'act now'" in reason.detail


def test_combine():
    assert combine([]) == 0.0
    assert combine([0.5]) == 0.5
    assert combine([0.5, 0.5]) == 0.75
    assert 0.0 <= combine([0.99] * 20) <= 1.0


def test_score_is_bounded_even_when_every_rule_fires():
    links = " ".join(f"http://1.2.3.{i}/x" for i in range(5))
    verdict = classify(
        "URGENT WINNER!!!",
        f"ACT NOW: CLAIM YOUR PRIZE OF $1,000,000, VERIFY YOUR ACCOUNT {links}",
    )
    assert {r.rule for r in verdict.reasons} == {rule.__name__.removeprefix("rule_") for rule in RULES}
    assert 0.0 <= verdict.score <= 1.0
    assert verdict.label == "spam"
