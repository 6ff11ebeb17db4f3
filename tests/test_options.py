"""Option parsing, precedence and the errors for contradictory combinations (pytester, no cluster)."""

from __future__ import annotations

import pytest

PRINT_SETTINGS = """
from pytest_k8s_sa.plugin.fixtures import SETTINGS_KEY

def test_settings(request):
    s = request.config.stash[SETTINGS_KEY]
    print(f"SETTINGS provider={s.provider} kubeconfig={s.kubeconfig} keep={s.keep_cluster} "
          f"keepns={s.keep_namespaces_on_failure} version={s.k8s_version} apt={s.apt_mirror} "
          f"nodewait={s.node_wait_seconds:g}")
"""


@pytest.fixture
def settings_of(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    for var in (
        "K8S_SA_PROVIDER",
        "K8S_SA_KUBECONFIG",
        "K8S_SA_KEEP_CLUSTER",
        "K8S_SA_VERSION",
        "K8S_SA_BIN_DIR",
        "K8S_SA_APT_MIRROR",
        "K8S_SA_NODE_WAIT",
    ):
        monkeypatch.delenv(var, raising=False)
    pytester.makepyfile(PRINT_SETTINGS)

    def run(*args: str) -> str:
        # A subprocess, not in-process: pytester's in-process runs restore sys.modules afterwards,
        # which drops lazily imported kubernetes models and breaks later tests in this process.
        result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider", *args)
        return next(x[x.index("SETTINGS") :] for x in result.outlines if "SETTINGS" in x)

    return run


def test_default_provider_is_local(settings_of):
    assert "provider=local " in settings_of()


def test_kubeconfig_alone_selects_the_kubeconfig_provider(settings_of, tmp_path):
    assert "provider=kubeconfig " in settings_of(f"--kubeconfig={tmp_path / 'kc'}")


def test_env_beats_ini_and_cli_beats_env(settings_of, pytester, monkeypatch):
    pytester.makeini("[pytest]\nk8s_sa_version = 1.35.0\nk8s_sa_keep_namespaces_on_failure = true\n")
    assert "version=1.35.0" in settings_of()
    assert "keepns=True" in settings_of()
    monkeypatch.setenv("K8S_SA_VERSION", "1.36.3")
    assert "version=1.36.3" in settings_of()
    assert "version=1.34.4" in settings_of("--k8s-version=1.34.4")


def test_apt_mirror_from_ini_env_and_flag(settings_of, pytester, monkeypatch):
    assert "apt=None" in settings_of()  # default: this machine's own apt sources
    pytester.makeini("[pytest]\nk8s_sa_apt_mirror = /etc/own.sources\n")
    assert "apt=/etc/own.sources" in settings_of()
    monkeypatch.setenv("K8S_SA_APT_MIRROR", "http://env.test/debian")
    assert "apt=http://env.test/debian" in settings_of()
    assert "apt=http://flag.test/debian" in settings_of("--k8s-apt-mirror=http://flag.test/debian")


def test_node_wait_from_ini_env_and_flag(settings_of, pytester, monkeypatch):
    assert settings_of().endswith("nodewait=5")
    pytester.makeini("[pytest]\nk8s_sa_node_wait = 120\n")
    assert settings_of().endswith("nodewait=120")
    monkeypatch.setenv("K8S_SA_NODE_WAIT", "1800")
    assert settings_of().endswith("nodewait=1800")
    assert settings_of("--k8s-node-wait=0").endswith("nodewait=0")


def test_keep_cluster_from_env(settings_of, monkeypatch):
    monkeypatch.setenv("K8S_SA_KEEP_CLUSTER", "yes")
    assert "keep=True" in settings_of()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--kind-cluster", "--k8s-provider=kubeconfig"], {}, "--kind-cluster contradicts --k8s-provider"),
        (["--k8s-provider=local", "--kubeconfig=/x"], {}, "use --k8s-provider kubeconfig"),
        (["--k8s-provider=kubeconfig"], {}, "needs a kubeconfig"),
        (["--kubeconfig=/x", "--k8s-version=1.37.2"], {}, "Drop --k8s-version"),
        (["--kubeconfig=/x", "--k8s-bin-dir=/y"], {}, "for the local provider only"),
        ([], {"K8S_SA_PROVIDER": "eks"}, "is not a valid --k8s-provider"),
        ([], {"K8S_SA_KEEP_CLUSTER": "maybe"}, "is not a boolean"),
        (["--k8s-node-wait=soon"], {}, "--k8s-node-wait: 'soon' is not a number of seconds"),
        ([], {"K8S_SA_NODE_WAIT": "-1"}, "--k8s-node-wait: '-1' is not a number of seconds"),
    ],
)
def test_contradictions_are_usage_errors(pytester, monkeypatch, args, env, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])
    assert "Traceback" not in result.stderr.str()


def test_unknown_provider_on_the_command_line_is_rejected(pytester):
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest_subprocess("--k8s-provider=eks")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*invalid choice: 'eks'*"])


def test_every_option_has_an_ini_key_and_env_var_in_help(pytester):
    result = pytester.runpytest_subprocess("--help")
    text = " ".join(result.stdout.str().split())  # help text is wrapped
    from pytest_k8s_sa.plugin.options import OPTIONS

    for option in (o for o in OPTIONS if "pytest" in o.fronts):
        assert option.ini in text
        assert f"env {option.env}" in text


def test_kubeconfig_option_is_registered_once_with_pytest_kind(pytester):
    """pytest-kind-ng registers --kubeconfig too; loading both must not conflict."""
    result = pytester.runpytest_subprocess("--help")
    assert result.ret == 0
    assert result.stdout.str().count("--kubeconfig=KUBECONFIG") == 1


def test_missing_kubeconfig_file_fails_with_a_clear_message(pytester, tmp_path):
    pytester.makepyfile("def test_needs_cluster(k8s_cluster): pass")
    result = pytester.runpytest_subprocess(f"--kubeconfig={tmp_path / 'nope'}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*[k8s-sa]*no such file*"])
    assert "Traceback" not in result.stdout.str()


def test_unreachable_cluster_fails_with_a_clear_message(pytester, tmp_path):
    from pytest_k8s_sa.base.kubeconfig import write_kubeconfig
    from pytest_k8s_sa.components.pki import CertificateAuthority

    ca = tmp_path / "ca.crt"
    ca.write_bytes(CertificateAuthority().cert_pem)
    kubeconfig = write_kubeconfig(tmp_path / "kc", "https://127.0.0.1:9", ca)
    pytester.makepyfile("def test_needs_cluster(k8s_cluster): pass")
    result = pytester.runpytest_subprocess(f"--kubeconfig={kubeconfig}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*[k8s-sa]*does not answer*"])


def test_kind_without_docker_says_what_to_do(pytester, monkeypatch):
    """No engine answers and none can be started (no `docker`, no `dockerd`): one line says what to do."""
    monkeypatch.setenv("PATH", "/nonexistent")
    pytester.makepyfile("def test_needs_cluster(k8s_cluster): pass")
    result = pytester.runpytest_subprocess("--kind-cluster")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*no Docker engine answers*"])
    assert "Traceback" not in result.stdout.str()
    assert "During handling" not in result.stdout.str(), "the error is said once, not as a chain"


# --- the argparse front ends read the same table (no cluster: settings only) ---------------------

_ENV = (
    "K8S_SA_PROVIDER",
    "K8S_SA_KUBECONFIG",
    "K8S_SA_VERSION",
    "K8S_SA_BIN_DIR",
    "K8S_SA_APT_MIRROR",
    "K8S_SA_NODE_WAIT",
    "K8S_SA_E2E_SLOW",
    "K8S_SA_E2E_FOCUS",
    "K8S_SA_E2E_TIMEOUT_MINUTES",
)


@pytest.fixture
def clean_env(monkeypatch):
    for var in _ENV:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def _up_settings(tmp_path, *argv):
    from pytest_k8s_sa import cli

    args = cli._parser().parse_args(["up", "--kubeconfig", str(tmp_path / "kc"), *argv])
    return cli._settings(args, tmp_path)


def test_up_honours_the_env_vars_and_a_flag_beats_them(clean_env, tmp_path):
    from pytest_k8s_sa.components.binaries import DEFAULT_K8S_VERSION

    settings = _up_settings(tmp_path)
    assert (settings.provider, settings.k8s_version, settings.node_wait_seconds) == (
        "local",
        DEFAULT_K8S_VERSION,
        5.0,
    )
    clean_env.setenv("K8S_SA_PROVIDER", "local-node")
    clean_env.setenv("K8S_SA_VERSION", "1.36.3")
    clean_env.setenv("K8S_SA_NODE_WAIT", "1800")
    clean_env.setenv("K8S_SA_APT_MIRROR", "http://env.test/debian")
    settings = _up_settings(tmp_path)
    assert (settings.provider, settings.k8s_version, settings.node_wait_seconds) == (
        "local-node",
        "1.36.3",
        1800,
    )
    assert settings.apt_mirror == "http://env.test/debian"
    assert _up_settings(tmp_path, "--k8s-provider", "local", "--k8s-node-wait", "0").provider == "local"
    assert _up_settings(tmp_path, "--k8s-node-wait", "0").node_wait_seconds == 0
    clean_env.setenv("K8S_SA_KUBECONFIG", str(tmp_path / "other"))  # the tests' cluster: not up's output
    assert _up_settings(tmp_path).kubeconfig is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"K8S_SA_PROVIDER": "kubeconfig"}, "$K8S_SA_PROVIDER = 'kubeconfig' is not a valid --k8s-provider"),
        ({"K8S_SA_NODE_WAIT": "soon"}, "--k8s-node-wait: 'soon' is not a number of seconds"),
    ],
)
def test_up_names_a_bad_env_var_and_starts_nothing(clean_env, tmp_path, capsys, env, message):
    from pytest_k8s_sa import cli

    for key, value in env.items():
        clean_env.setenv(key, value)
    assert cli.main(["up", "--kubeconfig", str(tmp_path / "kc")]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "kc").exists()


def test_up_help_names_the_env_vars(capsys):
    from pytest_k8s_sa import cli
    from pytest_k8s_sa.plugin.options import OPTIONS, UP

    with pytest.raises(SystemExit):
        cli.main(["up", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in (o for o in OPTIONS if UP in o.fronts):
        assert f"{option.flag} " in text
        assert f"env {option.env}" in text


def _e2e(*argv):
    from pytest_k8s_sa import cli
    from pytest_k8s_sa.upstream_e2e import command

    return command.resolve(cli._parser().parse_args(["upstream-e2e", *argv]))


def test_upstream_e2e_reads_the_same_table(clean_env, tmp_path):
    from pytest_k8s_sa.upstream_e2e.run import DEFAULT_FOCUS

    opts = _e2e()
    assert (opts.settings.provider, opts.focus, opts.slow, opts.timeout_minutes) == (
        "local",
        DEFAULT_FOCUS,
        False,
        0,
    )
    clean_env.setenv("K8S_SA_KUBECONFIG", str(tmp_path / "kc"))
    clean_env.setenv("K8S_SA_VERSION", "1.36.3")  # the e2e binary's version: allowed with a kubeconfig
    clean_env.setenv("K8S_SA_E2E_SLOW", "Yes")
    clean_env.setenv("K8S_SA_E2E_TIMEOUT_MINUTES", "5")
    opts = _e2e()
    assert (opts.settings.provider, opts.version, opts.slow, opts.timeout_minutes) == (
        "kubeconfig",
        "1.36.3",
        True,
        5,
    )
    assert _e2e("--focus", "X").focus == "X"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"K8S_SA_E2E_SLOW": "maybe"}, "$K8S_SA_E2E_SLOW for --slow: 'maybe' is not a boolean"),
        ({"K8S_SA_E2E_TIMEOUT_MINUTES": "soon"}, "--timeout-minutes: 'soon' is not a whole number"),
        ({"K8S_SA_PROVIDER": "eks"}, "is not a valid --k8s-provider"),
    ],
)
def test_upstream_e2e_names_a_bad_env_var(clean_env, env, message):
    from pytest_k8s_sa.plugin.options import OptionError

    for key, value in env.items():
        clean_env.setenv(key, value)
    with pytest.raises(OptionError) as error:
        _e2e()
    assert message in str(error.value)


@pytest.mark.parametrize(("raw", "value"), [("1", True), ("ON", True), (" no ", False), ("", False)])
def test_one_boolean_parser(raw, value):
    from pytest_k8s_sa.plugin.options import parse_bool

    assert parse_bool(raw, what="x") is value
