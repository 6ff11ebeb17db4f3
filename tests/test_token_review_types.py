"""``token_review`` takes what the other fixtures return (a ``Token``, a ``LegacyToken``, a raw
string) and says clearly when it is given something else."""

from __future__ import annotations

import pytest

from pytest_k8s_sa.cluster import tokens
from pytest_k8s_sa.cluster.tokens import LegacyToken


def test_token_review_accepts_what_legacy_token_returns(k8s_service_account, legacy_token, token_review):
    sa = k8s_service_account()
    legacy = legacy_token(sa)
    assert isinstance(legacy, LegacyToken)
    result = token_review(legacy)
    assert result.authenticated
    assert result.username == sa.username
    assert token_review(legacy.token).authenticated
    assert token_review(legacy.token.raw).authenticated


@pytest.mark.parametrize("wrong", [None, 42, b"a.b.c", {"token": "a.b.c"}])
def test_token_review_rejects_other_types_before_calling_the_api(token_review, k8s_client, wrong):
    with pytest.raises(TypeError, match=f"expected a token .*got {type(wrong).__name__}"):
        token_review(wrong)
    with pytest.raises(TypeError, match="LegacyToken"):
        tokens.review_token(k8s_client, wrong)


def test_wait_until_refused_returns_the_refusal_and_the_seconds(
    projected_token, k8s_service_account, token_review
):
    token = projected_token(k8s_service_account(), audiences=["a"])
    result, seconds = tokens.wait_until_refused(lambda: token_review(token, ["b"]), timeout=30)
    assert not result.authenticated
    assert seconds >= 0
