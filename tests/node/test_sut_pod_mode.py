"""Pod mode of a SUT file on the local node: image archives loaded into the node, no registry.

The reference workloads, packed as two images (``tests/node/sut_images.py``), are judged the way a
team's images would be: ``--sut`` names the images and their archives, the suite loads the archives
into containerd, deploys Deployments with the callee's in-cluster credentials and the caller's
projected token volume (and the token tap between caller and callee, so the rotation checks see
which token the caller sends), and runs the fast profile. Needs root on Linux (the local-node
provider) and waits for the machine's node lock if another run holds it. Each inner run is a plain
subprocess (kubernetes client) that starts its own node.

The fail-closed checks SEC-011..013 run in pod mode too: the callee's in-cluster API address is
re-pointed at an api-cut pod (``pytest_k8s_sa/deploy/apicut/pod_mode.py``). That they can fail there is shown
with the process-mode mutants packed as the callee image (``sut_images.build(..., mutant)``): the
same ``store.py`` that fails them in process mode must fail SEC-011 as a pod.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from host_commands import LOCAL_NODE

from .pod_runs import ROOT, run_on_node
from .sut_images import build

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1800),
    pytest.mark.host_commands(*LOCAL_NODE, root=True),
]


CALLER_REFRESH_BEYOND_WINDOW = "3600"
"""The caller's real re-read interval in the "reads once" SUT file: far beyond ROT-001's window."""


@pytest.fixture(scope="module")
def sut_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("sut"))


def test_the_fast_profile_judges_images_in_pod_mode(sut_file: Path, tmp_path: Path) -> None:
    output, report = run_on_node(sut_file, tmp_path)
    assert output.startswith("exit 0\n"), output
    by_id = {c["id"]: c for c in report["checks"]}
    assert report["provider"] == "local-node"
    assert by_id["ACC-001"]["outcome"] == "passed"
    assert by_id["ACC-001"]["fidelity"] == "real"
    assert by_id["RBAC-003"]["outcome"] == "passed"
    # The API cut in pod mode: every outage played (local-node holds the CA for the TLS ones).
    sec011 = by_id["SEC-011"]
    assert sec011["outcome"] == "passed", sec011
    assert "KUBERNETES_SERVICE_HOST=kubernetes" in sec011["evidence"]["cut"]
    assert sec011["evidence"]["normal_verdict"]["bytes_through_cut"] > 0
    assert len(sec011["evidence"]["outages"]) == 5
    assert "not_played" not in sec011["evidence"]
    assert by_id["SEC-012"]["outcome"] == "passed"
    # The token tap shows which token the caller sends; the restarted kubelet replaces its file.
    for check_id in ("ROT-001", "ROT-002"):
        assert by_id[check_id]["outcome"] == "passed", by_id[check_id]
        assert by_id[check_id]["fidelity"] == "real"
    rotation = by_id["ROT-001"]["evidence"]
    assert rotation["new_jti"] != rotation["old_jti"]
    assert rotation["rotation_trigger"].startswith("real kubelet")
    assert report["summary_by_level"]["must"]["failed"] == 0


def test_a_caller_that_does_not_re_read_its_token_fails_rotation_in_pod_mode(
    sut_file: Path, tmp_path: Path
) -> None:
    """The "caller reads its token once" mutant, in pod mode: caught by the token tap.

    The cheapest honest form: the same reference caller image, configured through its SUT-file env
    to re-read its token file only every 3600 s (``TOKEN_REFRESH_SECONDS``) while the SUT file still
    promises ``token_refresh_seconds: 2``. Within ROT-001's window (3 x 2 s + 5 s after the kubelet
    replaced the file) it keeps sending the old token, exactly as a caller that reads it once does;
    ``tests/mutants/caller_reads_token_once`` is the same defect in process mode. Only the rotation
    checks run (``suites/test_rotation.py``): they must fail, by the ids the mutant table names.
    """
    doc = yaml.safe_load(sut_file.read_text())
    doc["implementation"]["name"] = "reference caller that never re-reads its token (pod mode)"
    doc["caller"]["env"]["TOKEN_REFRESH_SECONDS"] = CALLER_REFRESH_BEYOND_WINDOW
    assert doc["caller"]["token_refresh_seconds"] == 2
    reads_once = sut_file.with_name("reads-once.yaml")  # next to the archives it names
    reads_once.write_text(yaml.safe_dump(doc, sort_keys=False))
    output, report = run_on_node(reads_once, tmp_path, [str(ROOT / "suites" / "test_rotation.py")])
    assert output.startswith("exit 1\n"), output
    failed = {c["id"] for c in report["checks"] if c["outcome"] == "failed" and c["level"] == "must"}
    # As tests/test_mutants.py's table says for the mutant: both share the rotation they wait for.
    assert failed == {"ROT-001", "ROT-002"}, output
    message = next(c["message"] for c in report["checks"] if c["id"] == "ROT-001")
    assert "did not pick up the replaced token file" in message, message


@pytest.mark.parametrize(
    ("mutant", "granted_in"),
    [
        ("grant_on_review_failure", "refused"),
        ("server_error_is_authenticated", "garbage: 500 with a success body"),
    ],
)
def test_a_callee_that_fails_open_fails_sec_011_as_a_pod(
    tmp_path: Path, mutant: str, granted_in: str
) -> None:
    sut = build(tmp_path / "sut", mutant)
    output, report = run_on_node(sut, tmp_path, [str(ROOT / "suites" / "test_security.py"), "-k", "outages"])
    assert output.startswith("exit 1\n"), output
    sec011 = next(c for c in report["checks"] if c["id"] == "SEC-011")
    assert sec011["outcome"] == "failed", sec011
    assert 200 <= sec011["evidence"]["outages"][granted_in]["status"] < 300, sec011["evidence"]
