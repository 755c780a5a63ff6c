#!/usr/bin/env python3
"""Computes X-Twilio-Signature for a form POST, as Twilio does.

    python3 infra/twilio-sign.py URL AUTH_TOKEN Name=Value [Name=Value ...]

Prints base64(HMAC-SHA1(auth_token, URL + each name and value, sorted by
name)) — Twilio's "Webhooks security" algorithm — for curl examples.
"""
import base64
import hashlib
import hmac
import sys


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    url, token, *pairs = sys.argv[1:]
    params = sorted(tuple(p.split("=", 1)) for p in pairs)
    data = url + "".join(k + v for k, v in params)
    digest = hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()
    print(base64.b64encode(digest).decode())


if __name__ == "__main__":
    main()
