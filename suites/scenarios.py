"""Shared scenarios: setups whose cost (waiting out the apiserver's 10 s cache) several checks share."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import kubernetes
import pytest

from pytest_k8s_sa import resources
from pytest_k8s_sa.tokens import BoundObject, Token, TokenReviewResult, request_token, review_token
from pytest_k8s_sa.waiting import wait_until

from .helpers import store_says

AUDIENCE = "secret-store"


@dataclass
class Case:
    token: Token
    before: TokenReviewResult
    after: TokenReviewResult | None = None
    seconds: float | None = None
    after_recreate: TokenReviewResult | None = None
    extra: dict[str, object] = field(default_factory=dict)


@pytest.fixture(scope="session")
def revoked(k8s_cluster, k8s_names, deployment) -> dict[str, Case]:
    """Bind tokens to a pod, a service account, a secret and a legacy Secret; delete them all at
    once; wait once until every token is refused; then recreate same-name objects."""
    api = k8s_cluster.api_client
    core = resources.core(api)
    namespace = k8s_names("revocation")
    resources.create_namespace(api, namespace, resources.run_labels(k8s_cluster.run_id))
    resources.create_service_account(api, namespace, "bound")
    resources.create_service_account(api, namespace, "doomed")
    # The pod case uses the API service's own identity, so the secret store accepts it until revoked.
    api_ns = deployment.api.namespace
    pod = resources.create_placeholder_pod(api, api_ns, "bound-pod", "api")
    secret = core.create_namespaced_secret(
        namespace,
        kubernetes.client.V1Secret(
            metadata=kubernetes.client.V1ObjectMeta(name="bound-secret"), string_data={"k": "v"}
        ),
    )

    def issue(sa: str, bound: BoundObject | None, ns: str = namespace) -> Case:
        token = request_token(api, ns, sa, audiences=[AUDIENCE], expiration_seconds=3600, bound_object=bound)
        return Case(token, review_token(api, token.raw, [AUDIENCE]))

    legacy_secret = "doomed-legacy-token"
    resources.create_legacy_token_secret(api, namespace, "bound", legacy_secret)
    legacy_raw = resources.wait_legacy_token(api, namespace, legacy_secret)
    legacy = Token.from_raw(legacy_raw)

    cases = {
        # Legacy tokens carry no audience: reviewed for the API audiences (None) they pass.
        "legacy": Case(legacy, review_token(api, legacy_raw, None)),
        "pod": issue("api", BoundObject("Pod", "bound-pod", pod.metadata.uid), api_ns),
        "service_account": issue("doomed", None),
        "secret": issue("bound", BoundObject("Secret", "bound-secret", secret.metadata.uid)),
    }
    # The same token, presented to the secret store, is accepted before revocation.
    cases["pod"].extra["store_before"] = store_says(deployment, cases["pod"].token.raw)[0]

    started = time.monotonic()
    resources.delete_pod(api, api_ns, "bound-pod")
    core.delete_namespaced_service_account("doomed", namespace)
    core.delete_namespaced_secret("bound-secret", namespace)
    core.delete_namespaced_secret(legacy_secret, namespace)

    def all_refused() -> bool:
        for case in cases.values():
            if case.after is None:
                audiences = None if case is cases["legacy"] else [AUDIENCE]
                result = review_token(api, case.token.raw, audiences)
                if not result.authenticated:
                    case.after, case.seconds = result, round(time.monotonic() - started, 1)
        return all(case.after is not None for case in cases.values())

    wait_until(
        all_refused, 40, "tokens still accepted 40 s after their objects were deleted", max_interval=1.0
    )
    cases["pod"].extra["store_after"] = store_says(deployment, cases["pod"].token.raw)[0]

    # Same-name objects with new UIDs must not bring the tokens back.
    new_pod = resources.create_placeholder_pod(api, api_ns, "bound-pod", "api")
    new_sa = resources.create_service_account(api, namespace, "doomed")
    cases["pod"].extra["new_pod_uid"] = new_pod.metadata.uid
    cases["service_account"].extra["new_sa_uid"] = new_sa.metadata.uid
    for key in ("pod", "service_account"):
        cases[key].after_recreate = review_token(api, cases[key].token.raw, [AUDIENCE])
    yield cases
    resources.delete_pod(api, api_ns, "bound-pod")
    resources.delete_namespace(api, namespace)
