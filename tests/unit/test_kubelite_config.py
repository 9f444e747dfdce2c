"""The runner's small API client: kubeconfig variants (JSON as the standalone agent writes it, YAML, file
and inline CAs and client certificates, token files, insecure), the in-cluster service account files,
token rotation, and that no credential shows in a repr or error. Pure parsing, real files in tmp_path.
"""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
from pathlib import Path

import pytest
import yaml
from ffrtmp_agent.kubelet import podspec
from ffrtmp_agent.runner import kubelite

PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"


def kubeconfig(cluster: dict, user: dict, *, context: str = "c") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": context,
        "clusters": [{"name": "other", "cluster": {"server": "https://wrong:1"}}, {"name": "k", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u", "namespace": "ns"}}],
    }


def test_given_the_standalone_agents_json_kubeconfig_when_loaded_then_server_ca_and_token_are_used(tmp_path: Path):
    doc = podspec.kubeconfig(
        server="https://10.0.0.1:6443/", token="s3cret", namespace="ns", ca_pem=PEM, insecure=False
    )
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(doc, indent=1))
    config = kubelite.load_kubeconfig(path)
    assert config.server == "https://10.0.0.1:6443"
    assert config.ca_pem == PEM and config.insecure is False
    assert config.token == "s3cret"
    assert "s3cret" not in repr(config)


def test_given_an_insecure_agent_kubeconfig_when_loaded_then_verification_is_off_only_there(tmp_path: Path):
    doc = podspec.kubeconfig(server="https://h:6443", token="t", namespace="ns", ca_pem=None, insecure=True)
    config = kubelite.parse_kubeconfig(doc, base_dir=tmp_path)
    assert config.insecure is True and config.ca_pem is None
    assert kubelite.ssl_context(config).verify_mode == ssl.CERT_NONE
    secure = kubelite.ssl_context(kubelite.ClusterConfig(server="https://h:6443"))
    assert secure.verify_mode == ssl.CERT_REQUIRED and secure.check_hostname


def test_given_a_yaml_kubeconfig_with_relative_files_when_loaded_then_paths_resolve_beside_it(tmp_path: Path):
    (tmp_path / "ca.crt").write_text(PEM)
    (tmp_path / "tok").write_text("from-file\n")
    doc = kubeconfig({"server": "https://h:6443", "certificate-authority": "ca.crt"}, {"tokenFile": "tok"})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    config = kubelite.load_kubeconfig(path)
    assert config.ca_pem == PEM
    assert config.token is None and config.token_file == str(tmp_path / "tok")


def test_given_inline_data_and_a_file_when_loaded_then_the_data_wins(tmp_path: Path):
    inline = base64.b64encode(PEM.replace("fake", "inline").encode()).decode()
    doc = kubeconfig(
        {"server": "https://h", "certificate-authority": "/nonexistent", "certificate-authority-data": inline},
        {
            "token": "t",
            "client-certificate-data": base64.b64encode(b"CERT").decode(),
            "client-key-data": base64.b64encode(b"KEY").decode(),
        },
    )
    config = kubelite.parse_kubeconfig(doc, base_dir=tmp_path)
    assert "inline" in (config.ca_pem or "")
    assert (config.client_cert_pem, config.client_key_pem) == ("CERT", "KEY")
    assert "KEY" not in repr(config)


def test_given_a_named_context_when_loaded_then_its_cluster_is_chosen(tmp_path: Path):
    doc = kubeconfig({"server": "https://right:6443"}, {"token": "t"}, context="none")
    doc["contexts"].append({"name": "x", "context": {"cluster": "other", "user": "u"}})
    assert kubelite.parse_kubeconfig(doc, base_dir=tmp_path, context="c").server == "https://right:6443"
    assert kubelite.parse_kubeconfig(doc, base_dir=tmp_path, context="x").server == "https://wrong:1"
    with pytest.raises(kubelite.ConfigError, match="no context named 'none'"):
        kubelite.parse_kubeconfig(doc, base_dir=tmp_path)


@pytest.mark.parametrize(
    ("cluster", "user", "message"),
    [
        ({"server": "h:6443"}, {"token": "t"}, "no http"),
        ({"server": "https://h"}, {"exec": {"command": "aws"}}, "exec credentials are not supported"),
        (
            {"server": "https://h", "certificate-authority": "missing.crt"},
            {"token": "t"},
            "cannot read certificate-authority",
        ),
        ({"server": "https://h", "certificate-authority-data": "%%%"}, {"token": "t"}, "not base64"),
    ],
)
def test_given_a_broken_kubeconfig_when_loaded_then_a_config_error_names_the_problem(
    tmp_path: Path, cluster: dict, user: dict, message: str
):
    with pytest.raises(kubelite.ConfigError, match=message):
        kubelite.parse_kubeconfig(kubeconfig(cluster, user), base_dir=tmp_path)


def test_given_garbage_or_a_missing_file_when_loaded_then_a_config_error(tmp_path: Path):
    with pytest.raises(kubelite.ConfigError, match="cannot read kubeconfig"):
        kubelite.load_kubeconfig(tmp_path / "absent")
    (tmp_path / "bad").write_text("- just\n- a list\n")
    with pytest.raises(kubelite.ConfigError, match="not a mapping"):
        kubelite.load_kubeconfig(tmp_path / "bad")


def service_account(tmp_path: Path, token: str = "sa-token") -> Path:
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text(token)
    (sa / "ca.crt").write_text(PEM)
    return sa


def test_given_in_cluster_files_when_loaded_then_service_host_ca_and_token_file_are_used(tmp_path: Path):
    sa = service_account(tmp_path)
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    config = kubelite.load_incluster(environ=env, sa_dir=sa)
    assert config.server == "https://10.96.0.1:443"
    assert config.ca_pem == PEM and config.token_file == str(sa / "token") and config.insecure is False
    v6 = kubelite.load_incluster(environ={**env, "KUBERNETES_SERVICE_HOST": "fd00::1"}, sa_dir=sa)
    assert v6.server == "https://[fd00::1]:443"


def test_given_no_cluster_environment_when_loaded_then_a_config_error(tmp_path: Path):
    with pytest.raises(kubelite.ConfigError, match="not in a cluster"):
        kubelite.load_incluster(environ={}, sa_dir=service_account(tmp_path))
    with pytest.raises(kubelite.ConfigError, match="token .* is missing"):
        kubelite.load_incluster(
            environ={"KUBERNETES_SERVICE_HOST": "h", "KUBERNETES_SERVICE_PORT": "1"}, sa_dir=tmp_path
        )


def test_given_kubeconfig_set_when_loading_from_environment_then_it_wins_over_in_cluster(tmp_path: Path):
    path = tmp_path / "kc"
    path.write_text(json.dumps(kubeconfig({"server": "https://from-kubeconfig"}, {"token": "t"})))
    env = {"KUBECONFIG": str(path), "KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert kubelite.load_from_environment(env).server == "https://from-kubeconfig"


def test_given_a_renewed_token_file_then_the_next_request_sends_the_new_token(tmp_path: Path):
    sa = service_account(tmp_path, token="first")
    now = [0.0]
    config = kubelite.ClusterConfig(server="http://127.0.0.1:9", token_file=str(sa / "token"))
    kube = kubelite.KubeClient(config, clock=lambda: now[0])
    assert kube._headers()["Authorization"] == "Bearer first"
    now[0] = 1.0
    assert kube._headers()["Authorization"] == "Bearer first"  # unchanged file: not read again
    renewed = sa / ".token.tmp"  # replaced the way the standalone agent and a kubelet do: rename over it
    renewed.write_text("second")
    renewed.replace(sa / "token")
    now[0] = 2.0
    assert kube._headers()["Authorization"] == "Bearer second"


def test_given_a_token_file_that_cannot_be_read_any_more_then_the_last_token_is_kept(tmp_path: Path):
    sa = service_account(tmp_path, token="first")
    now = [0.0]
    kube = kubelite.KubeClient(
        kubelite.ClusterConfig(server="http://127.0.0.1:9", token_file=str(sa / "token")), clock=lambda: now[0]
    )
    assert kube._headers()["Authorization"] == "Bearer first"
    (sa / "token").unlink()  # a renewal in progress
    now[0] = 61.0
    assert kube._headers()["Authorization"] == "Bearer first"


def test_given_real_client_cert_data_when_the_context_is_built_then_the_pair_loads(tmp_path: Path):
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(crt),
            "-days",
            "1",
            "-subj",
            "/CN=runner",
        ],
        check=True,
        capture_output=True,
    )
    doc = kubeconfig({"server": "https://h"}, {"client-certificate": str(crt), "client-key": str(key)})
    config = kubelite.parse_kubeconfig(doc, base_dir=tmp_path)
    kubelite.ssl_context(config)  # raises on an unusable pair
    mismatched = kubelite.ClusterConfig(server="https://h", client_cert_pem=crt.read_text(), client_key_pem="junk")
    with pytest.raises(kubelite.ConfigError, match="unusable"):
        kubelite.ssl_context(mismatched)
