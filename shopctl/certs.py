"""python -m shopctl.certs [DIR]: a development CA, one certificate per identity, and the token keys.

Writes into DIR (default certs/, ignored by git): ca.pem (and ca-key.pem, to issue more),
<identity>.pem and <identity>-key.pem for every identity in shoplib.security.identities (each
service's name as a DNS SAN plus localhost and 127.0.0.1; `client` for people with grpcurl, `ops`
for the tools), and jwt-signing-key.pem / jwt-public.pem for `make token`. Private keys are 0600.
A real deployment mounts its own files and names them by settings (TLS_CA_FILE, TLS_CERT_FILE...).
"""

from __future__ import annotations

import datetime
import ipaddress
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shoplib.security import files
from shoplib.security.identities import CERTIFICATES, HUMAN

VALID_DAYS = 365  # development certificates: a year, so a clone made today keeps working for a while
PRIVATE = 0o600  # keys: readable by their owner only
Key = ec.EllipticCurvePrivateKey


def _key() -> Key:
    return ec.generate_private_key(ec.SECP256R1())  # P-256: what every TLS stack speaks, fast handshakes


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "shop dev"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _builder(subject: str, issuer: x509.Name, public: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer).public_key(public)
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS)))


def authority() -> tuple[Key, x509.Certificate]:
    key = _key()
    cert = (_builder("shop dev CA", _name("shop dev CA"), key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def leaf(identity: str, ca_key: Key, ca: x509.Certificate) -> tuple[Key, x509.Certificate]:
    """A certificate for `identity`: its name as DNS SAN (the identity servers authorize), plus
    localhost and 127.0.0.1 for a service, so callers can reach it by address."""
    key = _key()
    names: list[x509.GeneralName] = [x509.DNSName(identity)]
    if identity != HUMAN:
        names += [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    cert = (_builder(identity, ca.subject, key.public_key())
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: Key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to a file only its owner can read (created so: never readable by others)."""
    path.unlink(missing_ok=True)
    path.touch(mode=PRIVATE)
    path.chmod(PRIVATE)
    path.write_bytes(data)


def write(directory: Path) -> list[str]:
    """Write the CA, every identity's certificate and key, and the token keys; the file names."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca = authority()
    (directory / files.CA).write_bytes(_pem(ca))
    write_private(directory / "ca-key.pem", _key_pem(ca_key))
    for identity in CERTIFICATES:
        key, cert = leaf(identity, ca_key, ca)
        (directory / f"{identity}.pem").write_bytes(_pem(cert))
        write_private(directory / f"{identity}-key.pem", _key_pem(key))
    signing = _key()
    write_private(directory / files.JWT_SIGNING_KEY, _key_pem(signing))
    (directory / files.JWT_PUBLIC_KEY).write_bytes(signing.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return sorted(path.name for path in directory.iterdir())


def main(argv: list[str]) -> None:
    directory = Path(argv[0] if argv else files.certs_dir())
    names = write(directory)
    print(f"wrote {len(names)} files into {directory}/ (keys 0600): {', '.join(names)}")


if __name__ == "__main__":
    main(sys.argv[1:])
