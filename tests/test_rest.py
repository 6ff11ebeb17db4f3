"""Plain-JSON calls (``cluster/rest.py``) on a real kube-apiserver: they answer and fail like the
client's generated calls, and a run's first objects are made without importing ``CoreV1Api``."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from kubernetes.client import ApiException
from kubernetes.client.exceptions import ConflictException, NotFoundException

from pytest_k8s_sa.cluster import resources, rest


def test_a_create_answers_what_the_client_reads_back(k8s_client, k8s_namespace):
    made = resources.create_service_account(k8s_client, k8s_namespace, "plain", labels={"a": "b"})
    read = resources.core(k8s_client).read_namespaced_service_account("plain", k8s_namespace)
    assert (made.name, made.uid, made.namespace) == ("plain", read.metadata.uid, k8s_namespace)
    assert read.metadata.labels == {"a": "b"}


def test_errors_are_the_clients_exceptions_with_status_and_body(k8s_client, k8s_namespace):
    with pytest.raises(ConflictException) as conflict:
        resources.create_namespace(k8s_client, k8s_namespace, {})
    assert conflict.value.status == 409
    assert "already exists" in conflict.value.body
    with pytest.raises(NotFoundException) as missing:
        rest.call(k8s_client, "GET", f"/api/v1/namespaces/{k8s_namespace}/pods/nobody")
    assert missing.value.status == 404
    with pytest.raises(ApiException) as unknown:
        rest.call(k8s_client, "POST", "/apis/no.such.group/v1/things", {"kind": "Thing"})
    assert unknown.value.status == 404


def test_the_first_objects_need_no_generated_api_class(k8s_cluster):
    """The point of the module: namespace, service account, pod, secret, a bound token and its
    review, all without loading ``CoreV1Api`` or ``V1Pod`` (a plain subprocess: this process has
    loaded them long ago)."""
    program = textwrap.dedent(
        f"""
        import sys
        import kubernetes
        from pytest_k8s_sa.cluster import resources
        from pytest_k8s_sa.cluster.tokens import BoundObject, request_token, review_token

        api = kubernetes.config.new_client_from_config(config_file={str(k8s_cluster.kubeconfig)!r})
        ns = "rest-first-objects"
        resources.create_namespace(api, ns, {{"pytest-k8s-sa/run": {k8s_cluster.run_id!r}}})
        try:
            resources.create_service_account(api, ns, "sa")
            pod = resources.create_placeholder_pod(api, ns, "p", "sa")
            secret = resources.create_secret(api, ns, "s", {{"k": "v"}})
            for bound in (BoundObject("Pod", "p", pod.uid), BoundObject("Secret", "s", secret.uid)):
                token = request_token(api, ns, "sa", audiences=["a"], bound_object=bound)
                review = review_token(api, token, ["a"])
                assert review.username == "system:serviceaccount:" + ns + ":sa", review
                assert token.expiration_timestamp is not None
            loaded = sorted(m for m in sys.modules if m.endswith((".core_v1_api", ".v1_pod")))
            print(loaded)
        finally:
            resources.delete_namespace(api, ns)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]", f"generated classes loaded: {done.stdout}"


def test_names_stay_one_path_segment():
    """A name holding ``/`` or ``?`` is percent-encoded, as the generated calls do: the apiserver
    refuses it instead of the request naming another URL."""
    assert rest.path("/api/v1/namespaces/{}/pods", "a/b?c=d") == "/api/v1/namespaces/a%2Fb%3Fc%3Dd/pods"
    assert rest.path("/api/v1/namespaces/{}/serviceaccounts/{}/token", "ns", "s a") == (
        "/api/v1/namespaces/ns/serviceaccounts/s%20a/token"
    )


def test_a_name_that_is_not_one_segment_is_refused(k8s_client, k8s_namespace):
    """Unencoded, this namespace would turn the rest of the path into a query and create the
    service account ``x`` in ``k8s_namespace``; encoded, the apiserver refuses the request."""
    with pytest.raises(ApiException) as refused:
        resources.create_service_account(k8s_client, k8s_namespace + "/serviceaccounts?x=", "x")
    assert refused.value.status in (404, 405)
    listed = rest.call(k8s_client, "GET", rest.path("/api/v1/namespaces/{}/serviceaccounts", k8s_namespace))
    assert "x" not in [item["metadata"]["name"] for item in listed["items"]]
