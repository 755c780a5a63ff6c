"""Test vectors for optline's Twilio webhook signatures, computed with
Twilio's own helper library (pip install twilio): its RequestValidator is
the published algorithm. Prints a JSON list; the Rust tests embed it."""
import hashlib
import json
import sys

from twilio.request_validator import HMAC_SHA1, HMAC_SHA256, RequestValidator

AUTH_TOKEN = "12345"
SHARED_KEY = "whsk_7Hq2mV9xLr4Pz8Tn3Bc6Yd1Wf5Ks0Ja"

vectors = []
form_url = "https://optline.example.org/twilio/inbound"
form = {
    "AccountSid": "AC00000000000000000000000000000000",
    "ApiVersion": "2010-04-01",
    "Body": "Stop please \u00e9\u00e8 \U0001F600",
    "From": "+14155552671",
    "MessageSid": "SM0123456789abcdef0123456789abcdef",
    "NumMedia": "0",
    "To": "+15005550006",
}
for algorithm, secret in [(HMAC_SHA1, AUTH_TOKEN), (HMAC_SHA256, SHARED_KEY)]:
    v = RequestValidator(secret)
    sig = v.compute_signature(form_url, form, algorithm)
    assert v.validate(form_url, form, sig, algorithm)
    vectors.append({"kind": "form", "algorithm": algorithm, "secret": secret,
                    "url": form_url, "params": sorted(form.items()), "signature": sig})

status_url = "https://optline.example.org/twilio/status?attempt=3f9a2c"
status = {"MessageSid": "SM0123456789abcdef0123456789abcdef", "MessageStatus": "undelivered",
          "ErrorCode": "21610", "AccountSid": "AC00000000000000000000000000000000"}
for algorithm, secret in [(HMAC_SHA1, AUTH_TOKEN), (HMAC_SHA256, SHARED_KEY)]:
    v = RequestValidator(secret)
    sig = v.compute_signature(status_url, status, algorithm)
    vectors.append({"kind": "form", "algorithm": algorithm, "secret": secret,
                    "url": status_url, "params": sorted(status.items()), "signature": sig})

body = json.dumps({"MessageSid": "SM0123456789abcdef0123456789abcdef", "From": "+14155552671",
                   "To": "+15005550006", "Body": "ARRÊT", "AccountSid": "AC00000000000000000000000000000000"},
                  separators=(",", ":"), ensure_ascii=False)
digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
json_url = "https://optline.example.org/twilio/inbound?bodySHA256=" + digest
for algorithm, secret in [(HMAC_SHA1, AUTH_TOKEN), (HMAC_SHA256, SHARED_KEY)]:
    v = RequestValidator(secret)
    sig = v.compute_signature(json_url, {}, algorithm)
    assert v.validate(json_url, body, sig, algorithm)
    vectors.append({"kind": "json", "algorithm": algorithm, "secret": secret,
                    "url": json_url, "body": body, "signature": sig})

json.dump(vectors, sys.stdout, indent=1, ensure_ascii=False)
print()
