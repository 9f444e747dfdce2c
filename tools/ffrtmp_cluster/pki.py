"""Keys, certificates and tokens for `make cluster`: a local CA, the apiserver's serving certificate (valid
for the loopback, control-plane and `kubernetes` Service addresses), the apiserver's client certificate for
the kubelets, the ServiceAccount signing key, and one static token per identity (admin, each kubelet as
system:node:<name>, controller-manager, scheduler, kube-proxy), so RBAC and the Node authorizer see the
same users as on a kubeadm cluster. Created once per cluster directory.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_SAN_DNS = [
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
]


@dataclass(frozen=True)
class Identity:
    user: str
    groups: tuple[str, ...] = ()


ADMIN = Identity("ffrtmp-admin", ("system:masters",))
CONTROLLER_MANAGER = Identity("system:kube-controller-manager")
SCHEDULER = Identity("system:kube-scheduler")
KUBE_PROXY = Identity("system:kube-proxy")


def node_identity(node: str) -> Identity:
    return Identity(f"system:node:{node}", ("system:nodes",))


@dataclass(frozen=True)
class Pki:
    dir: Path

    def path(self, name: str) -> Path:
        return self.dir / name

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.crt"

    def token(self, who: Identity) -> str:
        for line in (self.dir / "tokens.csv").read_text().splitlines():
            token, user = line.split(",")[:2]
            if user == who.user:
                return token
        raise KeyError(who.user)


def _pem_key(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert(
    subject: x509.Name,
    key,
    issuer: x509.Name,
    issuer_key,
    *,
    ca: bool = False,
    sans: list[x509.GeneralName] | None = None,
    usage=None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        b = b.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if usage:
        b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def ensure(directory: Path, *, ips: list[str], identities: list[Identity]) -> Pki:
    """Create what is missing; tokens are added for identities not yet in tokens.csv."""
    pki = Pki(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if not pki.ca_cert.exists():
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = _name("ffrtmp-cluster-ca")
        ca = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)
        key = ec.generate_private_key(ec.SECP256R1())
        sans = [x509.DNSName(d) for d in _SAN_DNS] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        serving = _cert(_name("kube-apiserver"), key, ca_name, ca_key, sans=sans, usage=ExtendedKeyUsageOID.SERVER_AUTH)
        ckey = ec.generate_private_key(ec.SECP256R1())
        client = _cert(
            _name("kube-apiserver-kubelet-client", "system:masters"),
            ckey,
            ca_name,
            ca_key,
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        )
        sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        files = {
            "apiserver.key": _pem_key(key),
            "apiserver.crt": serving.public_bytes(serialization.Encoding.PEM),
            "kubelet-client.key": _pem_key(ckey),
            "kubelet-client.crt": client.public_bytes(serialization.Encoding.PEM),
            "sa.key": _pem_key(sa),
            "sa.pub": sa.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            "ca.key": _pem_key(ca_key),
        }
        for name, data in files.items():
            pki.path(name).write_bytes(data)
            pki.path(name).chmod(0o600)
        pki.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    tokens = pki.path("tokens.csv")
    have = {line.split(",")[1] for line in tokens.read_text().splitlines()} if tokens.exists() else set()
    with tokens.open("a") as fh:
        for who in identities:
            if who.user not in have:
                # format: token,user,uid,"group1,group2"
                groups = f',"{",".join(who.groups)}"' if who.groups else ""
                fh.write(f"{secrets.token_hex(24)},{who.user},{who.user}{groups}\n")
    tokens.chmod(0o600)
    return pki
