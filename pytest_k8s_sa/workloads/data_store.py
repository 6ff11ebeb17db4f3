"""Data store: the same caller as the API service, run under another service account.

It exists to be refused: the secret store allows the API's service account, not this one, so a
correctly configured store answers it 403 even though its token is perfectly valid.

Environment: as ``api`` (see ``python -m k8s_sa_workloads.api --help``), except the defaults
``LISTEN_ADDR=:8082`` and ``TOKEN_PATH=/var/run/secrets/tokens/data-store-token``.
"""

from collections.abc import Mapping, Sequence
from typing import Self

from . import api
from .api import make_server

__all__ = ["DEFAULTS", "Config", "main", "make_server"]

DEFAULTS = api.Defaults("data-store", ":8082", "/var/run/secrets/tokens/data-store-token")


class Config(api.Config):
    """``api.Config`` whose ``from_env`` applies the data store's defaults."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str], defaults: api.Defaults = DEFAULTS) -> Self:
        return super().from_env(environ, defaults)


def main(argv: Sequence[str] | None = None) -> int:
    return api.run(DEFAULTS, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
