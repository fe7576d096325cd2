"""python -m shopctl.tokens SUB [--operator] [--ttl SECONDS]: a development bearer token (`make token SUB=alice`).

Signed (ES256) with certs/jwt-signing-key.pem from `make certs`; the gateway verifies it with
certs/jwt-public.pem. Use it as `-H "authorization: Bearer $(make -s token SUB=alice)"`.
"""

from __future__ import annotations

import argparse
import sys
import time

import jwt

from shoplib.security import auth, files

DEFAULT_TTL_S = 3600  # an hour: long enough for a grpcurl session, short enough to expire on its own
ALGORITHM = "ES256"  # the key `make certs` writes is P-256


def mint(key: bytes, subject: str, *, scope: str = "", ttl_s: float = DEFAULT_TTL_S, algorithm: str = ALGORITHM,
         headers: dict[str, object] | None = None, **overrides: object) -> str:
    """A token for `subject`; any claim can be overridden (the tests mint bad ones this way)."""
    now = time.time()
    claims: dict[str, object] = {"sub": subject, "iss": auth.ISSUER, "aud": auth.AUDIENCE, "iat": int(now),
                                 "exp": int(now + ttl_s), "scope": scope, **overrides}
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


def development_token(subject: str, operator: bool = False, ttl_s: float = DEFAULT_TTL_S) -> str:
    """A token signed with the development key in CERTS_DIR (certs/)."""
    key = files.read(files.certs_dir() / files.JWT_SIGNING_KEY, "CERTS_DIR")
    return mint(key, subject, scope=auth.OPERATOR_SCOPE if operator else "", ttl_s=ttl_s)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="shopctl.tokens")
    parser.add_argument("subject", help="the customer id the token speaks for")
    parser.add_argument("--operator", action="store_true", help=f"add the {auth.OPERATOR_SCOPE} scope")
    parser.add_argument("--ttl", type=float, default=DEFAULT_TTL_S, help="seconds until it expires")
    args = parser.parse_args(argv)
    print(development_token(args.subject, args.operator, args.ttl))


if __name__ == "__main__":
    main(sys.argv[1:])
