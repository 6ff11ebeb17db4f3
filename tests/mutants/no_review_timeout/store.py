"""Mutant: the TokenReview call has no timeout worth the name (a day).

While its Kubernetes API hangs, every request to the store hangs with it: nothing is granted, but
nothing is answered either, and an API brownout becomes an outage of every service behind the gate.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _reference  # noqa: F401

from pytest_k8s_sa.workloads import secret_store as ref

A_DAY = 24 * 3600.0


class Mutant(ref.SecretStoreApp):
    def __init__(self, config: ref.Config, **kwargs: object) -> None:
        super().__init__(config, **kwargs)  # type: ignore[arg-type]
        # MUTATION: the review waits as long as the API does.
        self._api = ref.KubeApiClient(config.api, A_DAY)


ref.SecretStoreApp = Mutant  # type: ignore[misc]
raise SystemExit(ref.main())
