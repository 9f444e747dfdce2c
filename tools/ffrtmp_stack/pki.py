"""Keys, certificates and the admin token for a local kube-apiserver.

A throwaway CA signs the apiserver's serving certificate (so kubeconfigs can verify TLS instead of
skipping it), an RSA key signs ServiceAccount tokens, and a static token file holds the admin identity.
Everything is created once per directory and reused, so a restarted stack keeps its kubeconfig and tokens.
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
from cryptography.x509.oid import NameOID

ADMIN_USER = "ffrtmp-admin"
ADMIN_GROUP = "system:masters"
SERVICE_IP = "10.0.0.1"  # first address of the service range given to the apiserver
_SAN_DNS = [
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
]


@dataclass(frozen=True)
class Pki:
    dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def serving_cert(self) -> Path:
        return self.dir / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.dir / "apiserver.key"

    @property
    def sa_key(self) -> Path:
        return self.dir / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.dir / "sa.pub"

    @property
    def token_file(self) -> Path:
        return self.dir / "tokens.csv"

    @property
    def admin_token(self) -> str:
        return self.token_file.read_text().split(",", 1)[0]


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert(*, subject: str, key, issuer_name: x509.Name | None, issuer_key, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
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
    else:
        sans = [x509.DNSName(d) for d in _SAN_DNS]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", SERVICE_IP)]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False).add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def ensure_pki(directory: Path) -> Pki:
    """Create the CA, serving cert, ServiceAccount key pair and admin token in `directory` unless present."""
    pki = Pki(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if not (pki.ca_cert.exists() and pki.serving_cert.exists() and pki.serving_key.exists()):
        # ECDSA keeps TLS setup fast; the apiserver accepts any key type for serving
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = _cert(subject="ffrtmp-local-ca", key=ca_key, issuer_name=None, issuer_key=ca_key, ca=True)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(subject="kube-apiserver", key=key, issuer_name=ca.subject, issuer_key=ca_key, ca=False)
        pki.serving_key.write_bytes(_pem_key(key))
        pki.serving_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pki.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    if not (pki.sa_key.exists() and pki.sa_pub.exists()):
        sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pki.sa_key.write_bytes(_pem_key(sa))
        pki.sa_pub.write_bytes(
            sa.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    if not pki.token_file.exists():
        # format: token,user,uid,"group1,group2"
        pki.token_file.write_text(f'{secrets.token_hex(24)},{ADMIN_USER},{ADMIN_USER},"{ADMIN_GROUP}"\n')
    for secret in (pki.serving_key, pki.sa_key, pki.token_file):
        secret.chmod(0o600)
    return pki
