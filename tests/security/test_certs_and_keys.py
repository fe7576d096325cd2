"""The development material (`make certs`, `make token`) and the ways a deployment hands in its
own: per-identity certificates with the right names, owner-only keys, tokens that the gateway's
verifier accepts, keys from a JWKS document picked by `kid`, token keys and a server certificate rotated
without a restart."""

from __future__ import annotations

import ipaddress
import json
import shutil
import stat
import time
from pathlib import Path

import grpc
import jwt
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shopctl import certs, tokens
from shoplib.process.service import Running, ServiceSpec
from shoplib.security import auth, files
from shoplib.security.identities import CERTIFICATES
from tests.security.certs import new_key, private_pem, write_leaf

TIMEOUT_S = 5.0


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("made")
    certs.write(directory)
    return directory


def test_make_certs_writes_every_identity_with_its_names_and_owner_only_keys(made: Path) -> None:
    ca = x509.load_pem_x509_certificate((made / files.CA).read_bytes())
    for identity in CERTIFICATES:
        cert = x509.load_pem_x509_certificate((made / f"{identity}.pem").read_bytes())
        cert.verify_directly_issued_by(ca)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert identity in names.get_values_for_type(x509.DNSName)
        if identity != "client":
            assert "localhost" in names.get_values_for_type(x509.DNSName)
            assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    private = sorted(made.glob("*-key.pem"))
    assert len(private) == len(CERTIFICATES) + 2  # every identity, the CA, the token signing key
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in private)


def verifier(directory: Path, jwks: Path | None = None) -> auth.TokenVerifier:
    return auth.TokenVerifier(auth.TokenSettings(auth.ISSUER, auth.AUDIENCE, directory / files.JWT_PUBLIC_KEY, jwks))


def test_make_token_mints_what_the_gateway_verifies(made: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTS_DIR", str(made))
    found = verifier(made).verify(f"Bearer {tokens.development_token('alice')}")
    assert found == auth.Principal("alice", frozenset())
    assert verifier(made).verify(f"Bearer {tokens.development_token('ops', operator=True)}").may_act_for("bob")


def test_keys_from_a_jwks_document_are_picked_by_kid(tmp_path: Path) -> None:
    keys = {kid: new_key() for kid in ("2025", "2026")}
    document = {"keys": [{**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key())), "kid": kid,
                          "alg": "ES256", "use": "sig"} for kid, key in keys.items()]}
    (tmp_path / "jwks.json").write_text(json.dumps(document))
    check = verifier(tmp_path, tmp_path / "jwks.json")
    token = tokens.mint(private_pem(keys["2026"]), "alice", headers={"kid": "2026"})
    assert check.verify(f"Bearer {token}").subject == "alice"
    wrong = tokens.mint(private_pem(keys["2025"]), "alice", headers={"kid": "2026"})  # signed by the other
    for bad, reason in ((wrong, "bad signature"),
                        (tokens.mint(private_pem(new_key()), "alice", headers={"kid": "nope"}), "unknown signing key")):
        with pytest.raises(auth.Unauthenticated, match=reason):
            check.verify(f"Bearer {bad}")


async def test_a_rotated_server_certificate_is_served_without_a_restart(
        tmp_path: Path, ca: trustme.CA, certs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway's certificate files are replaced while it runs: new connections get the new
    one (a client that trusts only the new CA connects), no restart."""
    directory = tmp_path / "rotating"
    shutil.copytree(certs_dir, directory)
    monkeypatch.setenv("CERTS_DIR", str(directory))
    running = Running(ServiceSpec(name="gateway", port=0, registrations=[], service_names=[]))
    await running.start()
    address = f"127.0.0.1:{running.port}"
    try:
        next_ca = trustme.CA()
        assert not await connects(address, next_ca)
        write_leaf(directory, "gateway", next_ca, "gateway")  # the new certificate, from the next CA
        assert await connects(address, next_ca)
    finally:
        await running.stop(grace=0.5)


async def connects(address: str, trusted: trustme.CA) -> bool:
    """Whether a new connection trusting only `trusted` gets a health answer."""
    credentials = grpc.ssl_channel_credentials(trusted.cert_pem.bytes())
    async with grpc.aio.secure_channel(address, credentials) as channel:
        try:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2.0)
        except grpc.aio.AioRpcError:
            return False
    return True


def test_a_token_verified_before_is_refused_once_it_expires(made: Path) -> None:
    """Tokens are remembered as verified only until their own expiry."""
    check = auth.TokenVerifier(auth.TokenSettings(auth.ISSUER, auth.AUDIENCE, made / files.JWT_PUBLIC_KEY,
                                                  leeway_s=0))
    token = f"Bearer {tokens.mint((made / files.JWT_SIGNING_KEY).read_bytes(), 'alice', ttl_s=1)}"
    assert check.verify(token).subject == "alice"
    time.sleep(1.5)  # exp has one-second resolution
    with pytest.raises(auth.Unauthenticated, match="token expired"):
        check.verify(token)


def jwks(keys: dict[str, ec.EllipticCurvePrivateKey]) -> str:
    return json.dumps({"keys": [{**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key())), "kid": kid,
                                 "alg": "ES256", "use": "sig"} for kid, key in keys.items()]})


def test_a_jwks_rotated_to_a_new_key_id_is_used_without_a_restart(tmp_path: Path) -> None:
    """The issuer adds a key (new kid), signs with it, then drops the old one: the verifier made
    before follows each step from the file; a token of the dropped key is refused, even one it
    had verified (and remembered) before."""
    old, new = new_key(), new_key()
    document = tmp_path / "jwks.json"
    document.write_text(jwks({"2026-01": old}))
    check = verifier(tmp_path, document)
    by_old = f"Bearer {tokens.mint(private_pem(old), 'alice', headers={'kid': '2026-01'})}"
    by_new = f"Bearer {tokens.mint(private_pem(new), 'alice', headers={'kid': '2026-02'})}"
    assert check.verify(by_old).subject == "alice"
    with pytest.raises(auth.Unauthenticated, match="unknown signing key"):
        check.verify(by_new)
    document.write_text(jwks({"2026-01": old, "2026-02": new}))
    assert check.verify(by_new).subject == "alice" and check.verify(by_old).subject == "alice"
    document.write_text(jwks({"2026-02": new}))
    time.sleep(auth.LOOK_INTERVAL_S)  # both tokens are remembered as verified: the periodic look drops them
    assert check.verify(by_new).subject == "alice"
    with pytest.raises(auth.Unauthenticated, match="unknown signing key"):
        check.verify(by_old)


def test_a_renewed_public_key_file_is_used_and_a_half_written_one_is_not(tmp_path: Path) -> None:
    old, new = new_key(), new_key()
    public = tmp_path / files.JWT_PUBLIC_KEY
    public.write_bytes(public_pem(old))
    check = verifier(tmp_path)
    by_old, by_new = (f"Bearer {tokens.mint(private_pem(key), 'alice')}" for key in (old, new))
    assert check.verify(by_old).subject == "alice"
    public.write_bytes(public_pem(new)[:40])  # caught mid-write: the old key stays
    assert check.verify(by_old).subject == "alice"
    public.write_bytes(public_pem(new))
    assert check.verify(by_new).subject == "alice"
    with pytest.raises(auth.Unauthenticated, match="bad signature"):
        check.verify(by_old)


def public_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
