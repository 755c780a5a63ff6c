#!/usr/bin/env python3
"""Writes shared/policy/tests/data/libphonenumber_examples.json: for every
region libphonenumber supports, its example fixed-line and mobile numbers
(valid) and its invalid example number, as Google's libphonenumber (the
PyPI package phonenumbers) formats and judges them. optline's tests check
that E164::parse agrees on every one.

Usage (from the repository root, with `pip install phonenumbers`):

    python3 shared/policy/tools/phone_examples.py
"""

import json
import os

import phonenumbers
from phonenumbers import PhoneNumberFormat as F
from phonenumbers import PhoneNumberType as T

OUT = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "tests", "data", "libphonenumber_examples.json",
)

numbers = []
for region in sorted(phonenumbers.SUPPORTED_REGIONS):
    for kind, name in [(T.FIXED_LINE, "fixed_line"), (T.MOBILE, "mobile")]:
        n = phonenumbers.example_number_for_type(region, kind)
        if n is None:
            continue
        numbers.append({
            "region": region,
            "type": name,
            "e164": phonenumbers.format_number(n, F.E164),
            "international": phonenumbers.format_number(n, F.INTERNATIONAL),
            "valid": phonenumbers.is_valid_number(n),
        })
    bad = phonenumbers.invalid_example_number(region)
    if bad is not None and not phonenumbers.is_valid_number(bad):
        numbers.append({
            "region": region,
            "type": "invalid",
            "e164": phonenumbers.format_number(bad, F.E164),
            "international": phonenumbers.format_number(bad, F.INTERNATIONAL),
            "valid": False,
        })

with open(OUT, "w", encoding="utf-8") as f:
    json.dump({
        "source": "libphonenumber example numbers (fixed line, mobile and the invalid example, "
                  "every supported region), from the PyPI package phonenumbers %s; regenerate "
                  "with shared/policy/tools/phone_examples.py" % phonenumbers.__version__,
        "numbers": numbers,
    }, f, indent=0)
    f.write("\n")
print(len(numbers), "numbers written to", OUT)
