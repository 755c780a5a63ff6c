#!/usr/bin/env python3
"""Builds optline-policy's NANP area-code tables from libphonenumber data.

Two steps, so that the committed data can be reviewed and regenerated
without network access:

1. ``extract`` writes libphonenumber's published prefix data as three text
   files under ``shared/policy/data/``, each with a provenance header:

   - ``nanp_timezones.txt``: every ``1...`` line of
     ``resources/timezones/map_data.txt`` (``prefix|zone&zone``).
   - ``intl_timezones.txt``: every other line of the same file (prefixes
     outside the NANP).
   - ``nanp_geocoding.txt``: from ``resources/geocoding/en/1.txt``, every
     area-code-level line (``1NPA|Description``) and, for an area code with
     no such line, the first line for each distinct state (the trailing
     ``, ST`` of a ``City, ST`` description, or the whole description).

   The source is either a libphonenumber checkout (``--libphonenumber DIR``)
   or the ``phonenumbers`` package from PyPI (``--python-phonenumbers``),
   which ships the same resources compiled into Python modules. Use the
   newest release (the tables were last built from 9.0.43); validity comes
   from the Rust ``phonenumber`` crate, checked against the same release's
   example numbers by ``tools/phone_examples.py`` and ``tests/phone.rs``.

2. ``generate`` reads those two files and writes
   ``shared/policy/src/phone/area_code_zones.rs``: static tables sorted by
   prefix that ``phone.rs`` binary-searches (no I/O at run time), the
   NANP's country-level zone list and the prefixes outside the NANP.

Usage (from the repository root):

    python3 shared/policy/tools/gen_area_codes.py extract --python-phonenumbers
    python3 shared/policy/tools/gen_area_codes.py generate
    cargo fmt -p optline-policy
"""

import argparse
import os
import re
import sys
from collections import OrderedDict

HERE = os.path.dirname(os.path.abspath(__file__))
CRATE = os.path.dirname(HERE)
TZ_FILE = os.path.join(CRATE, "data", "nanp_timezones.txt")
INTL_TZ_FILE = os.path.join(CRATE, "data", "intl_timezones.txt")
GEO_FILE = os.path.join(CRATE, "data", "nanp_geocoding.txt")
OUT_FILE = os.path.join(CRATE, "src", "phone", "area_code_zones.rs")

LICENSE = """\
# Extracted from libphonenumber (https://github.com/google/libphonenumber),
# Copyright (C) 2011-2026 The Libphonenumber Authors, licensed under the
# Apache License, Version 2.0 (http://www.apache.org/licenses/LICENSE-2.0).
"""

# US states, DC and territories by the names libphonenumber's English
# geocoding data uses for whole area codes.
STATE_NAMES = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR",
    "California": "CA", "Colorado": "CO", "Connecticut": "CT",
    "Delaware": "DE", "Washington D.C.": "DC", "Florida": "FL",
    "Georgia": "GA", "Hawaii": "HI", "Idaho": "ID", "Illinois": "IL",
    "Indiana": "IN", "Iowa": "IA", "Kansas": "KS", "Kentucky": "KY",
    "Louisiana": "LA", "Maine": "ME", "Maryland": "MD",
    "Massachusetts": "MA", "Michigan": "MI", "Minnesota": "MN",
    "Mississippi": "MS", "Missouri": "MO", "Montana": "MT",
    "Nebraska": "NE", "Nevada": "NV", "New Hampshire": "NH",
    "New Jersey": "NJ", "New Mexico": "NM", "New York": "NY",
    "North Carolina": "NC", "North Dakota": "ND", "Ohio": "OH",
    "Oklahoma": "OK", "Oregon": "OR", "Pennsylvania": "PA",
    "Rhode Island": "RI", "South Carolina": "SC", "South Dakota": "SD",
    "Tennessee": "TN", "Texas": "TX", "Utah": "UT", "Vermont": "VT",
    "Virginia": "VA", "Washington State": "WA", "West Virginia": "WV",
    "Wisconsin": "WI", "Wyoming": "WY",
}
US_CODES = set(STATE_NAMES.values()) | {"PR", "VI", "GU", "MP", "AS"}


def state_of(description):
    """The US state a geocoding description names, or None."""
    if description in STATE_NAMES:
        return STATE_NAMES[description]
    m = re.search(r", ([A-Z]{2})$", description)
    if m and m.group(1) in US_CODES:
        return m.group(1)
    return None


def state_key(description):
    """What distinguishes one description's state from another's."""
    m = re.search(r", ([A-Z]{2})$", description)
    return m.group(1) if m else description


def load_python(args):
    import phonenumbers
    from phonenumbers.tzdata import TIMEZONE_DATA
    from phonenumbers.geodata import GEOCODE_DATA

    tz = {k: "&".join(v) for k, v in TIMEZONE_DATA.items()}
    geo = {
        k: v["en"]
        for k, v in GEOCODE_DATA.items()
        if k.startswith("1") and "en" in v
    }
    version = "libphonenumber %s (as shipped in the PyPI package phonenumbers %s)" % (
        phonenumbers.__version__,
        phonenumbers.__version__,
    )
    return tz, geo, version


def load_prefix_file(path):
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#") or "|" not in line:
                continue
            prefix, value = line.split("|", 1)
            out[prefix] = value
    return out


def load_checkout(args):
    root = args.libphonenumber
    tz = load_prefix_file(os.path.join(root, "resources", "timezones", "map_data.txt"))
    geo = load_prefix_file(os.path.join(root, "resources", "geocoding", "en", "1.txt"))
    geo = {k: v for k, v in geo.items() if k.startswith("1")}
    version = "libphonenumber checkout %s (%s)" % (root, args.version or "unknown version")
    return tz, geo, version


def extract(args):
    if args.libphonenumber:
        tz, geo, version = load_checkout(args)
    else:
        tz, geo, version = load_python(args)

    with open(TZ_FILE, "w", encoding="utf-8") as f:
        f.write("# NANP (+1) prefix -> IANA time zones.\n")
        f.write("# Source: google/libphonenumber resources/timezones/map_data.txt,\n")
        f.write("# every line whose prefix starts with 1.\n")
        f.write("# Version: %s\n" % version)
        f.write("# Regenerate: python3 shared/policy/tools/gen_area_codes.py extract\n")
        f.write(LICENSE)
        for k in sorted(tz):
            if k.startswith("1"):
                f.write("%s|%s\n" % (k, tz[k]))

    with open(INTL_TZ_FILE, "w", encoding="utf-8") as f:
        f.write("# Prefix (country code and leading national digits) -> IANA time zones,\n")
        f.write("# for every country code but the NANP's (+1).\n")
        f.write("# Source: google/libphonenumber resources/timezones/map_data.txt.\n")
        f.write("# Version: %s\n" % version)
        f.write("# Regenerate: python3 shared/policy/tools/gen_area_codes.py extract\n")
        f.write(LICENSE)
        for k in sorted(tz):
            if not k.startswith("1"):
                f.write("%s|%s\n" % (k, tz[k]))

    kept = OrderedDict()
    by_npa = {}
    for k in sorted(geo):
        if len(k) < 4:
            continue
        by_npa.setdefault(k[1:4], []).append(k)
    for npa, keys in sorted(by_npa.items()):
        top = "1" + npa
        if top in geo:
            kept[top] = geo[top]
            continue
        seen = set()
        for k in keys:
            key = state_key(geo[k])
            if key not in seen:
                seen.add(key)
                kept[k] = geo[k]
    with open(GEO_FILE, "w", encoding="utf-8") as f:
        f.write("# NANP (+1) prefix -> English place description.\n")
        f.write("# Source: google/libphonenumber resources/geocoding/en/1.txt, trimmed:\n")
        f.write("# every area-code-level line (1NPA|...), and for an area code without\n")
        f.write("# one, the first line for each distinct state suffix (', ST').\n")
        f.write("# Version: %s\n" % version)
        f.write("# Regenerate: python3 shared/policy/tools/gen_area_codes.py extract\n")
        f.write(LICENSE)
        for k, v in kept.items():
            f.write("%s|%s\n" % (k, v))


def read_data(path):
    header = []
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("#"):
                header.append(line)
            elif "|" in line:
                rows.append(line.split("|", 1))
    return header, rows


def tz_variant(name):
    # chrono-tz names its enum variants by replacing '/' with '__',
    # dropping '-' and spelling '+' as 'Plus'.
    return "Tz::" + name.replace("/", "__").replace("-", "").replace("+", "Plus")


def version_of(header):
    for h in header:
        if h.startswith("# Version: "):
            return h[len("# Version: "):]
    return "unknown"


def generate(args):
    tz_header, tz_rows = read_data(TZ_FILE)
    geo_header, geo_rows = read_data(GEO_FILE)

    intl_header, intl_rows = read_data(INTL_TZ_FILE)
    npa_zones = {}
    prefix_zones = []
    nanp_zones = []
    for prefix, zones in tz_rows:
        zs = zones.split("&")
        if len(prefix) < 4:
            nanp_zones = zs  # the country-level line lists every NANP zone
            continue
        npa = prefix[1:4]
        acc = npa_zones.setdefault(npa, [])
        for z in zs:
            if z not in acc:
                acc.append(z)
        if len(prefix) > 4:
            if len(prefix) > 7:
                sys.exit("prefix longer than NPA-NXX: %s" % prefix)
            prefix_zones.append((prefix[1:], zs))

    npa_states = {}
    for prefix, desc in geo_rows:
        npa = prefix[1:4]
        st = state_of(desc)
        if len(prefix) == 4:
            npa_states[npa] = {st} if st else set()
            npa_states[npa + "!"] = True  # area-code-level line wins
        elif not npa_states.get(npa + "!"):
            npa_states.setdefault(npa, set())
            if st:
                npa_states[npa].add(st)
            else:
                npa_states[npa].add(None)
    states = {}
    for npa, v in npa_states.items():
        if npa.endswith("!"):
            continue
        if len(v) == 1 and None not in v:
            states[npa] = next(iter(v))

    out = []
    out.append("// @generated by shared/policy/tools/gen_area_codes.py; do not edit.")
    out.append("//")
    out.append("// Time zones: google/libphonenumber resources/timezones/map_data.txt,")
    out.append("// %s." % version_of(tz_header))
    out.append("// States: google/libphonenumber resources/geocoding/en/1.txt,")
    out.append("// %s." % version_of(geo_header))
    out.append("// The extracts are shared/policy/data/nanp_timezones.txt and")
    out.append("// shared/policy/data/nanp_geocoding.txt. libphonenumber is Copyright")
    out.append("// The Libphonenumber Authors, Apache License 2.0.")
    out.append("")
    out.append("use chrono_tz::Tz;")
    out.append("")
    out.append("/// The libphonenumber release the tables come from.")
    out.append("pub(super) const SOURCE_VERSION: &str = %s;" % rust_str(version_of(tz_header)))
    out.append("")
    out.append("/// Every zone libphonenumber lists for an area code, over the area-code")
    out.append("/// line and all its longer prefixes, sorted by area code.")
    out.append("pub(super) static NPA_ZONES: &[(u16, &[Tz])] = &[")
    for npa in sorted(npa_zones):
        out.append("    (%s, &[%s])," % (npa, ", ".join(tz_variant(z) for z in npa_zones[npa])))
    out.append("];")
    for digits in (4, 5, 6):
        out.append("")
        out.append("/// Prefixes of %d national digits (area code and %d of the exchange)," % (digits, digits - 3))
        out.append("/// without the country code, sorted.")
        out.append("pub(super) static PREFIX_ZONES_%d: &[(u32, &[Tz])] = &[" % digits)
        for prefix, zs in sorted(prefix_zones):
            if len(prefix) == digits:
                out.append("    (%s, &[%s])," % (prefix, ", ".join(tz_variant(z) for z in zs)))
        out.append("];")
    out.append("")
    out.append("/// Every zone of the NANP (libphonenumber's country-level line for +1):")
    out.append("/// the zones of a number that could be anywhere in it, such as toll free.")
    out.append("pub(super) static NANP_ZONES: &[Tz] = &[%s];" % ", ".join(tz_variant(z) for z in nanp_zones))
    out.append("")
    out.append("/// Prefixes outside the NANP (country code and leading national digits)")
    out.append("/// to zones, sorted by prefix as text; the longest matching prefix wins.")
    out.append("pub(super) static INTL_ZONES: &[(&str, &[Tz])] = &[")
    for prefix, zones in sorted(intl_rows):
        out.append("    (%s, &[%s])," % (rust_str(prefix), ", ".join(tz_variant(z) for z in zones.split("&"))))
    out.append("];")
    out.append("")
    out.append("/// US area codes whose geocoding names exactly one state (or DC),")
    out.append("/// sorted by area code.")
    out.append("pub(super) static NPA_STATES: &[(u16, &str)] = &[")
    for npa in sorted(states):
        out.append("    (%s, %s)," % (npa, rust_str(states[npa])))
    out.append("];")
    with open(OUT_FILE, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


def rust_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("extract")
    g = e.add_mutually_exclusive_group(required=True)
    g.add_argument("--libphonenumber", metavar="DIR")
    g.add_argument("--python-phonenumbers", action="store_true")
    e.add_argument("--version", help="release or commit of the checkout")
    sub.add_parser("generate")
    args = p.parse_args()
    if args.cmd == "extract":
        extract(args)
    else:
        generate(args)


if __name__ == "__main__":
    main()
