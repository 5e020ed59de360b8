"""Reading credits (§7.3): the op balance first, then the older fields; grants summed."""

from __future__ import annotations

from langchain_hailuo.agent.credits import Credits, parse_credit_details, parse_membership


def test_the_op_balance_wins_over_the_older_fields_that_read_zero() -> None:
    body = {
        "data": {
            "plan_name": "Plus",
            "total_remains_credit": 0,
            "op_credit_summary": {"total_remaining_amount": "1,234.50"},
        }
    }
    assert parse_membership(body) == ("Plus", 1234.5)


def test_older_fields_are_the_fallback_and_zero_is_a_balance() -> None:
    assert parse_membership(
        {"plan_type": "free", "total_remains_credit": 0, "opcredit_balance": 7}
    ) == (
        "free",
        7.0,
    )
    assert parse_membership({"total_remains_credit": 0}) == (None, 0.0)
    assert parse_membership({}) == (None, None)


def test_credit_details_sum_the_grants_and_an_absent_list_is_zero() -> None:
    body = {
        "details": [{"remaining_amount": "800.00"}, {"remaining_amount": "12.5"}],
        "total_count": 2,
    }
    assert parse_credit_details(body) == 812.5
    assert parse_credit_details({"total_count": 0}) == 0
    assert parse_credit_details({"details": "nope"}) is None


def test_describe_prefers_the_membership_and_shows_the_cross_check() -> None:
    assert (
        Credits("Free", 10.0, 10.0, 0.0).describe()
        == "plan Free, 10.00 credits left (grants: 10.00)"
    )
    assert Credits(None, None, 5.0, 0.0).describe() == "plan unknown, 5.00 credits left"
    assert Credits(None, None, None, 0.0).describe() == "plan unknown, credits unknown"
