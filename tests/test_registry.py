"""The provider registry: one table the plugin, the CLI and the benchmarks build providers from."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from pytest_k8s_sa.base.errors import K8sSAError
from pytest_k8s_sa.plugin import options
from pytest_k8s_sa.providers.base import Provider
from pytest_k8s_sa.providers.kind import KindProvider
from pytest_k8s_sa.providers.kubeconfig import KubeconfigProvider
from pytest_k8s_sa.providers.local import LocalProvider
from pytest_k8s_sa.providers.local_node import LocalNodeProvider
from pytest_k8s_sa.providers.registry import (
    DEFAULT_PROVIDER,
    PROVIDERS,
    UP_PROVIDERS,
    SettingsError,
    build_provider,
    resolve_provider,
)
from pytest_k8s_sa.providers.settings import Settings


def test_option_choices_come_from_the_registry() -> None:
    assert tuple(PROVIDERS) == options.PROVIDERS
    assert options.BY_DEST["k8s_provider"].choices == tuple(PROVIDERS)
    assert DEFAULT_PROVIDER == "local"
    assert set(UP_PROVIDERS) <= set(PROVIDERS)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("local", LocalProvider),
        ("local-node", LocalNodeProvider),
        ("kind", KindProvider),
        ("kubeconfig", KubeconfigProvider),
    ],
)
def test_every_name_builds_its_provider_without_starting_anything(
    name: str, cls: type, tmp_path: Path
) -> None:
    settings = Settings(provider=name, kubeconfig=str(tmp_path / "kc"), work_dir=str(tmp_path))
    provider = build_provider(name, settings)
    assert isinstance(provider, cls)
    assert isinstance(provider, Provider)
    assert provider.name == name


def test_settings_reach_the_provider(tmp_path: Path) -> None:
    kind = build_provider("kind", Settings(kind_image="kindest/node:v1.37.2", kind_bin="/opt/kind"))
    assert isinstance(kind, KindProvider)
    assert (kind.image, kind.kind_bin) == ("kindest/node:v1.37.2", "/opt/kind")
    by_version = build_provider("kind", Settings(k8s_version="1.36.3", kind_bin="/opt/kind"))
    assert isinstance(by_version, KindProvider)
    assert by_version.image == "kindest/node:v1.36.3"
    local = build_provider(
        "local", Settings(work_dir=str(tmp_path), shared=True, owner_pid=1, keep_cluster=True)
    )
    assert isinstance(local, LocalProvider)
    assert (local.shared_dir, local.shared, local.owner_pid, local.keep) == (tmp_path, True, 1, True)


def test_unknown_name_and_contradictions_say_what_to_do() -> None:
    with pytest.raises(SettingsError, match="choose one of local, kind, kubeconfig, local-node"):
        build_provider("minikube", Settings())
    with pytest.raises(K8sSAError, match="run without -n"):
        build_provider("local-node", Settings(provider="local-node", shared=True))
    with pytest.raises(SettingsError, match="needs a kubeconfig"):
        resolve_provider("kubeconfig")
    with pytest.raises(SettingsError, match="contradicts --k8s-provider local"):
        resolve_provider("local", kind_cluster=True)
    assert resolve_provider(None) == "local"
    assert resolve_provider(None, kind_cluster=True) == "kind"
    assert resolve_provider(None, kubeconfig="/kc") == "kubeconfig"


def test_up_with_explicit_local_provider_prints_ready_and_stops_on_sigterm(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kc"
    proc = subprocess.Popen(
        ["k8s-sa", "up", "--k8s-provider", "local", "--kubeconfig", str(kubeconfig)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"ready {kubeconfig}"
        assert "local cluster" in (proc.stderr.readline() if proc.stderr else "")
        assert kubeconfig.is_file()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        proc.wait()


def test_up_rejects_an_unknown_provider() -> None:
    result = subprocess.run(
        ["k8s-sa", "up", "--k8s-provider", "minikube", "--kubeconfig", "/dev/null"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "invalid choice: 'minikube'" in result.stderr


PROGRESS_CONFTEST = '''
from pytest_k8s_sa.base.errors import K8sSAError
from pytest_k8s_sa.providers import registry


class SlowFirstStart:
    """Stands in for a provider whose first start builds binaries: it says so, then gives up."""

    def create(self):
        import sys

        print("[k8s-sa] building kube-apiserver: 1/2079 packages compiled", file=sys.stderr, flush=True)
        raise K8sSAError("stopped here on purpose")


registry.PROVIDERS["local"] = lambda settings: SlowFirstStart()
'''


def test_provider_progress_is_not_swallowed_by_output_capture(pytester: pytest.Pytester) -> None:
    """Progress lines of a starting provider reach the terminal at once, not the captured output.

    Captured, they would only show in the failure report after minutes of a silent terminal.
    """
    pytester.makeconftest(PROGRESS_CONFTEST)
    pytester.makepyfile("def test_needs_a_cluster(k8s_cluster):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    assert any("1/2079 packages compiled" in line for line in result.errlines), result.errlines
    assert not any("Captured stderr" in line for line in result.outlines)
    result.stdout.fnmatch_lines(["*stopped here on purpose*"])
