"""The API cut's ``review`` mode (SEC-014's lying reviewer), without a cluster: what it answers to what."""

from __future__ import annotations

import json
from typing import Any

from pytest_k8s_sa.workloads.api_cut import MODES, TLS_MODES, review_answer

REVIEWS = b"/apis/authentication.k8s.io/v1/tokenreviews"
STATUS = json.dumps({"authenticated": True, "user": {"username": "system:serviceaccount:a:b"}}).encode()


def _split(answer: bytes) -> tuple[bytes, dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0], json.loads(body)


def test_a_token_review_gets_the_given_status_and_its_audiences_echoed_never_the_token():
    body = json.dumps({"spec": {"token": "secret-token-value", "audiences": ["store"]}}).encode()
    answer = review_answer(b"POST " + REVIEWS + b" HTTP/1.1\r\nHost: x", body, STATUS)
    assert answer is not None
    status_line, doc = _split(answer)
    assert status_line == b"HTTP/1.1 201 Created"
    assert doc["kind"] == "TokenReview"
    assert doc["status"] == json.loads(STATUS)
    assert doc["spec"] == {"audiences": ["store"]}
    assert b"secret-token-value" not in answer


def test_anything_but_a_token_review_is_not_answered_as_one():
    assert review_answer(b"GET " + REVIEWS + b" HTTP/1.1", b"", STATUS) is None
    assert (
        review_answer(b"POST /apis/authorization.k8s.io/v1/subjectaccessreviews HTTP/1.1", b"{}", STATUS)
        is None
    )
    assert review_answer(b"POST " + REVIEWS + b" HTTP/1.1", b"not json", STATUS) is None


def test_review_is_a_mode_that_terminates_tls():
    assert "review" in MODES
    assert "review" in TLS_MODES


def _length_delimited(number: int, payload: bytes) -> bytes:
    assert len(payload) < 128  # one-byte lengths suffice here
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_a_protobuf_token_review_from_client_go_is_answered_in_json():
    """client-go's typed clients send TokenReviews as Kubernetes protobuf: the envelope ``k8s\\0``, a
    runtime.Unknown whose field 2 holds the TokenReview (spec = field 2: token 1, audiences 2)."""
    spec = _length_delimited(1, b"secret-token-value") + _length_delimited(2, b"store")
    spec += _length_delimited(2, b"other")
    review = _length_delimited(1, b"") + _length_delimited(2, spec)
    unknown = _length_delimited(1, b"\x0a\x02v1") + _length_delimited(2, review)
    head = b"POST " + REVIEWS + b" HTTP/1.1\r\nContent-Type: application/vnd.kubernetes.protobuf"
    answer = review_answer(head, b"k8s\x00" + unknown, STATUS)
    assert answer is not None
    status_line, doc = _split(answer)
    assert status_line == b"HTTP/1.1 201 Created"
    assert b"Content-Type: application/json" in answer
    assert doc["spec"] == {"audiences": ["store", "other"]}
    assert doc["status"] == json.loads(STATUS)
    assert b"secret-token-value" not in answer


def test_a_protobuf_body_that_is_not_one_is_not_answered():
    head = b"POST " + REVIEWS + b" HTTP/1.1\r\nContent-Type: application/vnd.kubernetes.protobuf"
    assert review_answer(head, b"{}", STATUS) is None
    assert review_answer(head, b"k8s\x00\x12\x7f", STATUS) is None  # field 2 claims 127 bytes, has 0
