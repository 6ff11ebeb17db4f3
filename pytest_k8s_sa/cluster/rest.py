"""Plain-JSON calls to the apiserver through the official client's ``ApiClient``, without its
generated API classes and models.

Why: kubernetes 37 builds pydantic validators for every method of an API class and a schema for every
model when it first loads them: ``CoreV1Api`` costs ~1.2 s of a core, ``V1Pod`` alone ~0.5 s. A run's
first objects (the caller's namespace, service account and pod, the revocation's tokens) are on the
path to the apiserver's 10 s token cache, which starts only once they exist; made through these calls
they need not wait for that import, which finishes meanwhile in a thread (:mod:`.client_import`).

The calls go through the same ``ApiClient`` (its host, TLS, credentials, headers and pool) and fail
the same way (``ApiException`` and its subclasses, with the status and body), so callers handle them
as they handle the generated calls. Only what the first objects need is here; everything else uses
the generated API classes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import kubernetes
from kubernetes.client import ApiException

AUTH_SETTINGS = ["BearerToken"]
"""What every generated call of the client names: the configuration's bearer token, when it has one
(client certificates are the ``ApiClient``'s pool's own)."""


@dataclass(frozen=True)
class Created:
    """What the callers of a create need of the object: its name, namespace and UID."""

    name: str
    uid: str
    namespace: str | None = None

    @classmethod
    def from_object(cls, obj: dict[str, Any]) -> Created:
        meta = obj["metadata"]
        return cls(meta["name"], meta["uid"], meta.get("namespace"))


def path(template: str, *names: str) -> str:
    """``template`` with each ``{}`` replaced by a name, percent-encoded as the generated calls do:
    a name holding ``/`` or ``?`` stays one path segment and the apiserver refuses it, instead of
    naming another URL."""
    return template.format(*(quote(name, safe="") for name in names))


def call(
    api_client: kubernetes.client.ApiClient, method: str, path: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``method path`` with ``body`` as JSON; the answer's JSON. Raises ``ApiException`` (or the
    subclass for its status, as the generated calls do) on any status outside 2xx."""
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    method, url, header_params, payload, post_params = api_client.param_serialize(
        method, path, header_params=headers, body=body, auth_settings=AUTH_SETTINGS
    )
    response = api_client.call_api(method, url, header_params, payload, post_params)
    response.read()
    text = response.data.decode("utf-8") if response.data else ""
    if not 200 <= response.status <= 299:
        raise ApiException.from_response(http_resp=response, body=text, data=None)
    answer = json.loads(text) if text else {}
    if not isinstance(answer, dict):
        raise ApiException(status=response.status, reason="the apiserver answered JSON that is not an object")
    return answer
