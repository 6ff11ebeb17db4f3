"""Mutant (jwks): the issuer is not checked.

Signature, audience and expiry are verified against the cluster's key set as in the control, but
``iss`` is never compared with ``ISSUER_URL``: a token signed with the cluster's key for another
issuer is granted (SEC-004).
"""

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _jwks import OfflineStore, main


class Mutant(OfflineStore):
    def decode_options(self) -> dict[str, Any]:
        # MUTATION: no `issuer=` (PyJWT then checks `iss` only for presence).
        return {"options": {"require": ["exp", "iss", "aud", "sub"]}}


if __name__ == "__main__":
    raise SystemExit(main(Mutant))
