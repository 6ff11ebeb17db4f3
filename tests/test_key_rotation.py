"""Signing-key rotation on the embedded control plane (``rotate_signing_key``, ``KeyControl``).

One test walks the whole rotation, because each step restarts the kube-apiserver (seconds): add a
key (new tokens carry its ``kid``; old and new verify), retire the old keys (old tokens refused, new
ones granted, objects made before still there), and after the fixture the original key signs again.
Under xdist the plugin runs it alone (the run's lock, exclusive).
"""

from __future__ import annotations

import pytest

from pytest_k8s_sa.cluster import resources
from pytest_k8s_sa.cluster.tokens import header_kid, request_token, review_token
from pytest_k8s_sa.components.signingkeys import KeySetState, SigningKeys


def test_add_then_retire_rotates_what_signs_and_what_verifies(
    k8s_cluster, k8s_service_account, projected_token, token_review, mint_token, rotate_signing_key
):
    sa = k8s_service_account()
    before = projected_token(sa, audiences=["my-service"])
    original = rotate_signing_key.signing_kid
    assert header_kid(before.raw) == original
    assert header_kid(mint_token(sa, audiences=["my-service"]).raw) == original

    added = rotate_signing_key.add()
    after = projected_token(sa, audiences=["my-service"])
    assert added.signing_kid != original
    assert header_kid(after.raw) == added.signing_kid
    assert set(added.verifying_kids) == {original, added.signing_kid}
    assert token_review(before, ["my-service"]).authenticated, "the overlap must keep the old key"
    assert token_review(after, ["my-service"]).authenticated
    minted = mint_token(sa, audiences=["my-service"])  # follows the current key
    assert header_kid(minted.raw) == added.signing_kid
    assert token_review(minted, ["my-service"]).authenticated

    retired = rotate_signing_key.retire()
    assert retired.verifying_kids == [added.signing_kid]
    old_review = token_review(before, ["my-service"])
    assert not old_review.authenticated
    assert token_review(after, ["my-service"]).authenticated
    # etcd kept running: the service account made before the restarts is still there, same uid.
    kept = resources.core(k8s_cluster.api_client).read_namespaced_service_account(sa.name, sa.namespace)
    assert kept.metadata.uid == sa.uid
    assert all(step.restart_seconds > 0 for step in rotate_signing_key.steps)


def test_after_the_fixture_the_original_key_signs_and_every_key_verifies(k8s_cluster):
    control = k8s_cluster.key_control
    if control is None:
        pytest.skip(k8s_cluster.key_control_missing)
    # Whatever ran before (the rotation test, in this worker or another), the cluster is usable and
    # signs with its original key.
    token = request_token(k8s_cluster.api_client, "default", "default", expiration_seconds=600)
    assert review_token(k8s_cluster.api_client, token.raw).authenticated
    assert not control.rotated


def test_key_set_state_steps(tmp_path):
    """The on-disk key set without a cluster: which keys sign and verify after each step."""
    from pytest_k8s_sa.components.pki import service_account_signing_key

    legacy_pub, _ = service_account_signing_key().write(tmp_path, "sa-legacy")
    _, original = service_account_signing_key().write(tmp_path, "sa")
    keys = SigningKeys(tmp_path / "sa.key", tmp_path / "sa.crt", legacy_pub)
    keys.initialise(original.read_bytes())
    assert keys.state() == KeySetState(0, [0], 1, 0)
    assert keys.add() == KeySetState(1, [0, 1], 2, 0)
    assert (tmp_path / "sa.key").read_bytes() == (keys.directory / "1.key").read_bytes()
    bundle = (tmp_path / "sa.crt").read_bytes()
    assert bundle.count(b"BEGIN PUBLIC KEY") == 3  # two rotated keys and the legacy key
    assert keys.retire() == KeySetState(1, [1], 2, 0)
    assert (tmp_path / "sa.crt").read_bytes().count(b"BEGIN PUBLIC KEY") == 2
    assert keys.restore() == KeySetState(0, [0, 1], 2, 0)
    assert (tmp_path / "sa.key").read_bytes() == original.read_bytes()
