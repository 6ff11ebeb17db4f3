"""Mutant: serves one connection at a time (no thread per connection), so one idle client stalls it."""

import socketserver
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _reference  # noqa: F401

from pytest_k8s_sa.workloads import httpserver
from pytest_k8s_sa.workloads import secret_store as ref


class Sequential(httpserver.WorkloadServer):
    def process_request(self, request: Any, client_address: Any) -> None:
        socketserver.TCPServer.process_request(self, request, client_address)  # MUTATION: no thread


httpserver.WorkloadServer = Sequential  # type: ignore[misc]  # what bind() builds
raise SystemExit(ref.main())
