"""Money rules shared by every service: ISO 4217 codes, integer minor units, bounded amounts."""

from __future__ import annotations

from shop.v1 import types_pb2

from shoplib.rules.bounds import MAX_AMOUNT_MINOR

# How much of a refused currency code an error message repeats.
ECHO_CHARS = 8

# Active ISO 4217 alphabetic codes (2024 list), so a typo such as "EUX" is refused.
ISO_4217 = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
    BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL
    GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW
    KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN
    NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK
    SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS
    VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL""".split()
)



def money(currency_code: str, amount_minor: int) -> types_pb2.Money:
    return types_pb2.Money(currency_code=currency_code, amount_minor=amount_minor)


def violations(field: str, value: types_pb2.Money) -> list[tuple[str, str]]:
    """The field violations of one Money value, as (field path, description) pairs."""
    found: list[tuple[str, str]] = []
    if value.currency_code not in ISO_4217:
        shown = value.currency_code[:ECHO_CHARS]  # echo a bounded part of what was sent
        found.append((f"{field}.currency_code", f"{shown!r} is not an ISO 4217 currency code"))
    if value.amount_minor < 0:
        found.append((f"{field}.amount_minor", "must not be negative"))
    elif value.amount_minor > MAX_AMOUNT_MINOR:
        found.append((f"{field}.amount_minor", f"must be at most {MAX_AMOUNT_MINOR}"))
    return found


def format_money(value: types_pb2.Money) -> str:
    """A human rendering, assuming two minor digits (good enough for messages)."""
    major, minor = divmod(abs(value.amount_minor), 100)
    sign = "-" if value.amount_minor < 0 else ""
    return f"{sign}{major:,}.{minor:02d} {value.currency_code}"
