"""schemathesis hooks for imaged's Scalr API: every request is signed as Scalr's clients sign it, over the exact bytes
sent. Loaded with `SCHEMATHESIS_HOOKS=<path of this file>`; the key comes from `IMAGED_SCALR_KEY_ID` and
`IMAGED_SCALR_SECRET` (`imaged account key create NAME --scalr`).

The signature covers the method, `X-Scalr-Date`, the path, the canonical query and the raw body, so it can only be
computed once the request is final: `requests.Session.send` (which every schemathesis request goes through, with the
prepared request whose URL and body are what goes on the wire) is wrapped to sign requests to `/api/v1beta0/` just
before they leave. schemathesis generates the three `X-Scalr-*` headers from the document's security schemes; their
values are replaced by real ones, and a header it left out on purpose (a negative test) stays out."""

import base64
import hashlib
import hmac
import os
from datetime import datetime, timezone
from urllib.parse import urlsplit

import requests

KEY_ID = os.environ.get("IMAGED_SCALR_KEY_ID", "")
SECRET = os.environ.get("IMAGED_SCALR_SECRET", "")
PREFIX = "/api/v1beta0/"
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
_HEX = frozenset(b"0123456789abcdefABCDEF")


def _encode(text: str) -> str:
    """RFC 3986: unreserved bytes literal, every other byte `%XX` upper-case (what the server re-encodes to)."""
    return "".join(chr(b) if b in _UNRESERVED else "%%%02X" % b for b in text.encode())


def _decode(text: str) -> str:
    """`+` is a space, then percent-decoding; a malformed escape or bytes that are not UTF-8 leave the text as it is
    (Foundation's `removingPercentEncoding` gives nil there and the server keeps the undecoded text)."""
    spaced = text.replace("+", " ")
    raw = spaced.encode()
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] == 0x25:  # %
            pair = raw[i + 1:i + 3]
            if len(pair) < 2 or not all(c in _HEX for c in pair):
                return spaced
            out.append(int(pair, 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    try:
        return out.decode()
    except UnicodeDecodeError:
        return spaced


def canonical_query(query: str) -> str:
    """Scalr's canonical query: pairs parsed (the last of a repeated name wins), sorted by name bytewise, re-encoded."""
    values: dict[str, str] = {}
    for pair in query.split("&"):
        if not pair:
            continue
        name, eq, value = pair.partition("=")
        values[_decode(name)] = _decode(value) if eq else ""
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(values.items(), key=lambda kv: kv[0].encode()))


def sign(request: requests.PreparedRequest, key_id: str = "", secret: str = "", *, only_present: bool = False) -> requests.PreparedRequest:
    """Signs `request` in place. `only_present`: set only those `X-Scalr-*` headers the request already carries (a
    negative test that leaves one out on purpose stays without it)."""
    key_id, secret = key_id or KEY_ID, secret or SECRET
    url = urlsplit(request.url)
    date = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    text = "\n".join([request.method.upper(), date, url.path, canonical_query(url.query)]).encode() + b"\n" + body
    signature = base64.b64encode(hmac.new(secret.encode(), text, hashlib.sha256).digest()).decode()
    for name, value in [("X-Scalr-Key-Id", key_id), ("X-Scalr-Date", date), ("X-Scalr-Signature", f"V1-HMAC-SHA256 {signature}")]:
        if not only_present or name in request.headers:
            request.headers[name] = value
    return request


_send = requests.Session.send


def _signed_send(self, request, **kwargs):
    if urlsplit(request.url).path.startswith(PREFIX):
        sign(request, only_present=True)
    return _send(self, request, **kwargs)


# Only when a key is configured: importing this module for `sign()` alone changes nothing.
if KEY_ID and SECRET and not getattr(requests.Session.send, "_scalr_signing", False):
    _signed_send._scalr_signing = True
    requests.Session.send = _signed_send
