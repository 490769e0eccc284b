"""Find and scrub personal data (PII) in chat text before a public release.

The BB3x data card promises that released conversations carry no personal data: personal names,
e-mail addresses, phone numbers, street addresses (PO boxes and continental "12 rue des Lilas" too),
dates of birth, UK postcodes and US ZIP codes, social security, card, IBAN, passport and licence plate
numbers, social-media handles (``@name``, usernames in profile URLs) and IP addresses are replaced,
while well-known entities (Taylor Swift, Paris, Apple) are kept. `Scrubber` does that for the release
step:

- text PII (names, e-mail and IP addresses, handles, dates of birth, the street name of an address)
  becomes a token such as ``[PII:3f9a0c1e2b]``: HMAC-SHA256 of the normalised text under a secret salt,
  truncated. The same text gives the same token within a release, so "Sarah ... Sarah" still corefers,
  and without the salt a token can neither be reversed nor checked against a guessed name.
- numeric PII (phone, SSN, card and ZIP numbers; street, flat and PO box numbers) keeps its shape,
  separators and length, but every digit is redrawn by a generator seeded from the HMAC, so it is stable
  within a release and never the original. Codes that mix letters and digits (postcodes, IBANs, passport
  and plate numbers) have their letters redrawn the same way (an IBAN keeps its country).

Everything runs offline without a model. Numbers, codes, e-mail and IP addresses are regular
expressions with validation (Luhn for bare card numbers, ``ipaddress`` for IPv6, the ISO 13616 check
digits and each country's length for IBANs, the list of UK postcode areas, US state codes before a ZIP).
Where a pattern alone would also match ordinary text, a cue word must come first: a date is a date of
birth only after "born", "DOB", "my birthday is" and the like ("in May 2021" stays), a number is a
passport or plate number only after "passport" or "reg"/"plate" (a current-style UK plate, "AB12 CDE",
needs none), five digits are a ZIP code only after "zip" or a state ("Austin, TX 78704"). Names
combine context cues ("my name is", "my wife", "Hi", "Thanks,") with the graded list in
``given_names.txt`` and the entities in ``well_known_entities.txt``; `_names` states the rules. Where the
two goals collide the rules keep ordinary text ("Will you help me?", "May is my favourite month") rather
than catch every name, and a name no cue or list reveals ("Xochitl came over") is missed.

This module must never log, print, store or return the salt or the original text of a span (a
Scrubber's repr hides its salt), and it must not fetch anything at run time.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import ipaddress
import os
import random
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import NamedTuple

PII_KINDS: tuple[str, ...] = (
    "name", "email", "phone", "address", "ssn", "card", "ip",
    "dob", "postcode", "zip", "iban", "passport", "plate", "handle",
)

_DATA = Path(__file__).parent
_TOKEN_HEX = 10  # 40 bits: distinct names in one release almost never share a token
_NUMERIC_KINDS = frozenset({"phone", "ssn", "card", "zip"})  # "address" mixes digits and a street name
_CODE_KINDS = frozenset({"postcode", "iban", "passport", "plate"})  # letters and digits both redrawn
# Where detectors claim overlapping text, the more specific pattern wins ("a@b.com" is an e-mail
# address, not a name "a"; "4111 1111 1111 1111" is a card, not a phone number; a card-like run of
# groups inside an IBAN is part of the IBAN).
_PRIORITY = {
    "email": 13, "iban": 12, "ip": 11, "card": 10, "dob": 9, "ssn": 8, "passport": 7, "plate": 6, "phone": 5,
    "postcode": 4, "zip": 3, "handle": 2, "address": 1, "name": 0,
}
_DIGITS = "0123456789"  # str.isdigit() also accepts "²" and Devanagari digits, which we keep


@dataclass(frozen=True)
class PIISpan:
    """`text[start:end]` is personal data of `kind`, one of PII_KINDS."""

    start: int
    end: int
    kind: str


class Scrubber:
    """Finds PII in chat text and replaces it. Use one instance, so one salt, per release."""

    def __init__(self, salt: bytes | None = None):
        # A fresh random salt per release means tokens cannot be linked across releases.
        self._salt = os.urandom(32) if salt is None else bytes(salt)

    def __repr__(self) -> str:
        return "Scrubber(salt=<secret>)"

    def find(self, text: str) -> list[PIISpan]:
        """Spans of PII in `text`, sorted and non-overlapping."""
        keep = _entity_spans(text)
        found = [
            *_emails(text), *_ips(text), *_cards(text), *_ssns(text), *_phones(text), *_addresses(text),
            *_dobs(text), *_postcodes(text), *_zips(text), *_ibans(text), *_passports(text), *_plates(text),
            *_handles(text),
        ]
        found = [c for c in found if _covering(keep, c[0], c[1]) is None]  # "10 Downing Street" stays
        found += _names(text, keep)
        return _non_overlapping(found)

    def scrub(self, text: str, spans: list[PIISpan] | None = None) -> str:
        """`text` with every span from `find` (or the `spans` already found) replaced as the module docstring describes."""
        out, last = [], 0
        for span in self.find(text) if spans is None else spans:
            out += [text[last : span.start], self._replace(text[span.start : span.end], span.kind)]
            last = span.end
        out.append(text[last:])
        return "".join(out)

    def _replace(self, original: str, kind: str) -> str:
        if kind in _NUMERIC_KINDS:
            return self._randomise_digits(original)
        if kind in _CODE_KINDS:
            return self._randomise_code(original, keep=2 if kind == "iban" else 0)
        if kind == "address":
            if _PO_BOX.fullmatch(original):  # "PO Box 4471": only the number says who
                return self._randomise_digits(original)
            parts = _street_part(original)
            if parts is None:  # cannot happen for spans from _addresses; never leak if it does
                return self._token(original)
            head, street, tail = original[: parts[0]], original[parts[0] : parts[1]], original[parts[1] :]
            return self._randomise_digits(head) + self._token(street) + self._randomise_digits(tail)
        return self._token(original)

    def _mac(self, message: str) -> bytes:
        return hmac.new(self._salt, message.encode("utf-8"), hashlib.sha256).digest()

    def _token(self, original: str) -> str:
        return f"[PII:{self._mac(_normalise(original)).hex()[:_TOKEN_HEX]}]"

    def _randomise_digits(self, original: str) -> str:
        if not any(ch in _DIGITS for ch in original):
            return original
        # Domain-separated from _token so a digit string's token and its fake digits are unrelated.
        rng = random.Random(self._mac("digits\x00" + original))
        while True:  # a redraw equals the original with probability <= 1/9, so this ends quickly
            redrawn = _redraw(rng, original)
            if redrawn != original:
                return redrawn

    def _randomise_code(self, original: str, keep: int = 0) -> str:
        """Letters and digits redrawn, case and separators kept; the first `keep` characters stay (a country)."""
        rng = random.Random(self._mac("code\x00" + original))
        while True:
            redrawn = original[:keep] + _redraw(rng, original[keep:], letters=True)
            if redrawn != original:
                return redrawn


_ASCII_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _redraw(rng: random.Random, text: str, letters: bool = False) -> str:
    out = []
    for i, ch in enumerate(text):
        if letters and ch.isascii() and ch.isalpha():
            new = rng.choice(_ASCII_UPPER)
            out.append(new if ch.isupper() else new.lower())
        elif ch not in _DIGITS:
            out.append(ch)
        elif (i == 0 or text[i - 1] not in _DIGITS) and ch != "0":
            out.append(str(rng.randint(1, 9)))  # "42 Main St" must not become "07 Main St"
        else:
            out.append(str(rng.randrange(10)))
    return "".join(out)


def _normalise(text: str) -> str:
    """What makes two mentions "the same text" for a token: case, accents and spacing do not count."""
    return " ".join(_fold(text).casefold().split())


def _non_overlapping(found: list[tuple[int, int, str]]) -> list[PIISpan]:
    chosen: list[tuple[int, int, str]] = []  # sorted by start, pairwise disjoint
    for start, end, kind in sorted(found, key=lambda c: (_PRIORITY[c[2]], c[1] - c[0]), reverse=True):
        k = bisect.bisect(chosen, (start,))
        if (k == 0 or chosen[k - 1][1] <= start) and (k == len(chosen) or end <= chosen[k][0]):
            chosen.insert(k, (start, end, kind))
    return [PIISpan(start, end, kind) for start, end, kind in chosen]


# ---------------------------------------------------------------------------------------------
# E-mail, IP, card, SSN, phone and street addresses: patterns, validated where a pattern alone
# would also match ordinary numbers.

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\w|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])")
_CARD_GROUPED = re.compile(r"(?<![\w-])(?:\d{4}([ -])\d{4}\1\d{4}\1\d{4}|\d{4}([ -])\d{6}\2\d{5})(?!\w|[ -]\d)")
_DIGIT_RUN = re.compile(r"(?<![\w.,])\d{13,19}(?!\w|[.,]\d)")
_SSN = re.compile(r"(?<![\w-])(?!000)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?!\w|-\d)")
# After a cue the nine digits may be spaced or run together, and other words (even "my W-2") may come
# between: "the SSN on my W-2 is 219 44 6801", "my social is 610 22 4719".
_SSN_CONTEXT = re.compile(
    r"(?:\bssn|\bss#|\bss\s+no\b\.?|\bsoc(?:ial)?\.?\s+sec(?:urity)?\b\.?(?:\s+(?:number|no\.?|num|#))?|\bsocial\b)"
    r"[^\n]{0,25}?(?<![\w-])(\d{3}[ -]?\d{2}[ -]?\d{4})(?!\w|-\d)",
    re.I,
)
_PHONES = (  # (pattern, fewest digits, most digits)
    # international: +44 20 7946 0958, +1 (415) 555-0132
    (re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?(?:\(\d{1,4}\)|\d{1,5})){2,6}(?!\w)"), 8, 15),
    # North American: (555) 123-4567, 555-123-4567, 555.123.4567, 1-800-555-0199
    (re.compile(r"(?<![\w+.-])(?:1[ .-])?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}(?!\w|[.-]\d)"), 10, 11),
    # national with a trunk 0: 020 7946 0958, 07700 900123, (02) 9876 5432, (020) 7946 0958
    (re.compile(r"(?<![\w+.-])(?:0\d{2,4}[ -]|\(0\d{1,4}\) ?)\d{3,4}[ -]?\d{3,4}(?!\w|[.-]\d)"), 9, 11),
    # French, in pairs: 06 12 34 56 78, 01.23.45.67.89
    (re.compile(r"(?<![\w+.-])0[1-9](?:([ .-])\d{2})(?:\1\d{2}){3}(?!\w|[.-]\d)"), 10, 10),
)
# Bare runs ("5551234567", "555 1234") read as phone numbers only when the text says so.
_PHONE_CONTEXT = re.compile(
    r"\b(?:phone|cell|cellphone|mobile|tel|telephone|whatsapp|text me|call me|reach me|my number|his number"
    r"|her number|your number)\b[^\d\n]{0,20}?(\+?\(?\d[\d ().-]{5,18}\d)(?!\w)",
    re.I,
)
_STREET_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Circle|Cir"
    r"|Parkway|Pkwy|Highway|Hwy|Square|Sq|Trail|Crescent|Close|Alley|Plaza|Grove|Mews|Row|Gardens|Gdns"
    r"|Heights|Hts|Rise|Vale|Wharf|Quay)"
)
# A sentence's full stop after "Street" stays outside the span; "St., Apt 4" takes its own period.
_UNIT = r"(?:\.?,?\s+(?i:Apt|Apartment|Unit|Suite|Ste|Flat)\.?\s*#?\s*\w{1,5}\b|\s*#\s*\d{1,5}\b)?"
# A flat before the house number: "Flat 5, 88 Rosebery Gardens".
_UNIT_FIRST = r"(?:(?i:Flat|Apt|Apartment|Unit|Suite)\.?\s*#?\s*\d{1,4}[A-Za-z]?,?\s+)?"
_ADDRESS = re.compile(
    rf"(?<![\w.,$£€-]){_UNIT_FIRST}\d{{1,6}}[A-Za-z]?\s+"  # house number: 42, 221B
    r"(?:(?:[NSEW]|North|South|East|West)\.?\s+)?"
    r"(?:[A-Z][\w'’.-]*|\d{1,3}(?:st|nd|rd|th))(?:\s+[A-Z][\w'’.-]*){0,3}\s+"  # Maple, 5th, Martin Luther King Jr
    rf"(?i:{_STREET_SUFFIX})\b{_UNIT}"
)
# In lower case ("i live at 42 maple street") the street words could be any words, so only after
# a phrase that announces an address: "3 miles down the road" must stay.
_ADDRESS_CONTEXT = re.compile(
    r"\b(?:live[sd]? (?:at|on)|living (?:at|on)|address(?: is)?:?|located at|(?:house|home|flat|place|apartment) is"
    r"(?: at)?|moved (?:in)?to|stay(?:ing)? at|(?:i'm|i’m|im|i am|we're|we’re|we are) at|meet (?:me|us) at"
    r"|pick (?:me|us) up (?:at|from)|drop (?:it|them|this|that|(?:the|my) \w+)(?: off)? (?:at|to)"
    r"|ship to|deliver(?:y)? to"
    r"|(?:send|ship|deliver|mail|post) (?:it|them|this|that|(?:the|my) \w+) to)\s+"
    rf"({_UNIT_FIRST}\d{{1,6}}[a-z]?\s+(?:[^\W\d_][\w'’.-]*\s+){{1,4}}{_STREET_SUFFIX}\b{_UNIT})",
    re.I,
)
_ADDRESS_PARTS = re.compile(rf"{_UNIT_FIRST}\d+[A-Za-z]?,?\s+(?P<street>.+)\s+{_STREET_SUFFIX}\b", re.I | re.S)
# Where the street type comes first: "12 rue des Lilas", "6, rue Sainte-Catherine", "45 Calle de Alcalá".
_STREET_TYPE_FIRST = (
    r"(?:rue|avenue|av\.|boulevard|bd|allée|allee|impasse|chemin|quai|place|cours|passage|calle|avenida|avda\.|paseo"
    r"|carrer|via|viale|piazza|corso|rua|travessa|largo)"
)
_STREET_PARTICLE = r"(?:de\s+la|de\s+l['’]|de\s+los|de\s+las|du|des|de|d['’]|del|della|delle|dei|di|da|do|dos|das)"
_CAPITAL_WORD = r"[A-ZÀ-ÖØ-Þ][\w'’-]+"
_ADDRESS_TYPE_FIRST = re.compile(
    r"(?<![\w.,$£€-])\d{1,5}(?:\s?(?:bis|ter)|[A-Za-z])?,?\s+"
    rf"(?i:{_STREET_TYPE_FIRST})\s+(?:(?i:{_STREET_PARTICLE})\s*)?(?P<street>{_CAPITAL_WORD}"
    rf"(?:\s+(?:(?i:{_STREET_PARTICLE})\s*)?{_CAPITAL_WORD}){{0,3}})"
)
# German style, the number after the street: "Hauptstraße 12", "Berliner Str. 5a".
_ADDRESS_NUMBER_LAST = re.compile(
    r"(?<![\w-])(?P<street>(?:[A-ZÄÖÜ][\wäöüß-]*\s+)?[A-ZÄÖÜ][\wäöüß-]*"
    r"(?:straße|strasse|str\.|gasse|allee|platz|weg|damm))"
    r"\s+\d{1,4}[a-z]?(?![\w-])"
)
_PO_BOX = re.compile(
    r"(?<![\w.])(?i:p\.?\s?o\.?\s*box|post\s+office\s+box|postfach|apartado(?:\s+de\s+correos)?|casilla)"
    r"\s*#?\s*\d{1,7}(?![\w-])"
)
_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.I)


def _emails(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), "email") for m in _EMAIL.finditer(text)]


def _ips(text: str) -> list[tuple[int, int, str]]:
    found = [(m.start(), m.end(), "ip") for m in _IPV4.finditer(text)]
    for m in _IPV6.finditer(text):
        try:
            ipaddress.IPv6Address(m.group())
        except ValueError:  # "10:30:00", MAC addresses
            continue
        if sum(ch.isalnum() for ch in m.group()) >= 4:  # "::1" and "a::b" identify nobody
            found.append((m.start(), m.end(), "ip"))
    return found


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _cards(text: str) -> list[tuple[int, int, str]]:
    # Typed in groups (4-4-4-4, or Amex 4-6-5) a number reads as a card whatever its check digit: in
    # chat people mistype or half-invent one, and it is still theirs to protect. A bare run of 13-19
    # digits is as often an order number, a tracking code or a timestamp, so it must pass Luhn (a
    # random run passes one time in ten).
    found = [(m.start(), m.end(), "card") for m in _CARD_GROUPED.finditer(text)]
    found += [(m.start(), m.end(), "card") for m in _DIGIT_RUN.finditer(text) if _luhn_ok(m.group())]
    return found


def _ssns(text: str) -> list[tuple[int, int, str]]:
    found = [(m.start(), m.end(), "ssn") for m in _SSN.finditer(text)]
    return found + [(m.start(1), m.end(1), "ssn") for m in _SSN_CONTEXT.finditer(text)]


def _phones(text: str) -> list[tuple[int, int, str]]:
    found = []
    for pattern, fewest, most in _PHONES:
        for m in pattern.finditer(text):
            if fewest <= sum(ch in _DIGITS for ch in m.group()) <= most:
                found.append((m.start(), m.end(), "phone"))
    for m in _PHONE_CONTEXT.finditer(text):
        if 7 <= sum(ch in _DIGITS for ch in m.group(1)) <= 15:
            found.append((m.start(1), m.end(1), "phone"))
    return found


def _addresses(text: str) -> list[tuple[int, int, str]]:
    found = [(m.start(), m.end(), "address") for m in _ADDRESS.finditer(text)]
    found += [(m.start(1), m.end(1), "address") for m in _ADDRESS_CONTEXT.finditer(text)]
    for pattern in (_ADDRESS_TYPE_FIRST, _ADDRESS_NUMBER_LAST, _PO_BOX):
        found += [(m.start(), m.end(), "address") for m in pattern.finditer(text)]
    return found


def _street_part(address: str) -> tuple[int, int] | None:
    """Where the street's name is in an address span: it becomes a token, the rest keeps its shape."""
    for pattern in (_ADDRESS_PARTS, _ADDRESS_TYPE_FIRST, _ADDRESS_NUMBER_LAST):
        m = pattern.match(address)
        if m:
            return m.span("street")
    return None


# ---------------------------------------------------------------------------------------------
# Dates of birth, postcodes and ZIP codes, IBANs, passport and plate numbers, handles.

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?"
    r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|janvier|février|fevrier|mars|avril|mai|juin|juillet|août|aout"
    r"|septembre|octobre|novembre|décembre|decembre|enero|febrero|marzo|abril|mayo|junio|julio|agosto"
    r"|septiembre|octubre|noviembre|diciembre|januar|februar|märz|maerz|juni|juli|oktober|dezember)\.?"
)
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th|er|\.)?"
_YEAR = r"\d{4}"
_DATE = (
    r"(?:(?:1[89]|20)\d\d[-/.](?:0?[1-9]|1[0-2])[-/.](?:[12]\d|3[01]|0?[1-9])"  # 1992-03-05
    r"|(?:[12]\d|3[01]|0?[1-9])[-/.](?:[12]\d|3[01]|0?[1-9])[-/.](?:(?:1[89]|20)\d\d|\d\d)"  # 14/07/1989, 09/23/01
    # 12 June 1987, 5th of November 1990, 3 de mayo de 1990
    rf"|{_DAY}(?:\s+(?:of|de))?\s+{_MONTH}(?:,?\s+(?:de\s+)?(?:{_YEAR}|['’]\d\d))?"
    rf"|{_MONTH}\s+{_DAY}(?:,?\s+(?:{_YEAR}|['’]\d\d))?"  # March 3rd, 1995; jan 17 2003
    r")"
)
# A date is someone's date of birth only when the text says so, before it ("born", "DOB:", "my
# birthday is on the") or after it ("... is my birthday"). "We moved in May 2021" stays.
_BIRTH_CUE = (
    r"(?:\bborn\b|\bbirth\s*day\b|\bbirthday|\bb-?day\b|\bdob\b|\bd\.o\.b\b\.?|\bdate\s+of\s+birth\b|\bbirth\s*date\b"
    r"|\bdate\s+de\s+naissance\b|\bn[ée]e?\s+le\b|\bfecha\s+de\s+nacimiento\b|\bnacid[oa]\s+el\b"
    r"|\bgeboren\b|\bgeburtsdatum\b"
    r"|\bgeb\.|\bdata\s+di\s+nascita\b|\bnat[oa]\s+il\b|\bdata\s+de\s+nascimento\b|\bnascid[oa]\s+em\b)"
)
# "my birthday is in march 2 weeks from now": a count, not a day of the month
_NOT_A_DAY = r"(?!\s+(?:weeks?|days?|months?|years?|hours?|hrs?|minutes?|mins?|times?|more|people|guys|friends|kids)\b)"
_DOB = re.compile(
    rf"{_BIRTH_CUE}[^\n\d]{{0,25}}?(?<![\w/.-])(?P<date>{_DATE})(?![\w/-]|[.,]\d){_NOT_A_DAY}", re.I
)
_DOB_AFTER = re.compile(
    rf"(?<![\w/.-])(?P<date>{_DATE})(?![\w/-]|[.,]\d)[^\n\d]{{0,12}}?\b(?:is|was|=)\s+(?:my|his|her|their|our|your)\s+"
    r"(?:birth\s*day|birthday|b-?day|birth\s*date|date\s+of\s+birth|dob)\b",
    re.I,
)
_FOUR_DIGITS = re.compile(r"(?<!\d)\d{4}(?!\d)")


def _dobs(text: str) -> list[tuple[int, int, str]]:
    found = []
    oldest = date.today().year - 120  # "Mozart was born on 27 January 1756" is nobody alive's
    for pattern in (_DOB, _DOB_AFTER):
        for m in pattern.finditer(text):
            year = _FOUR_DIGITS.search(m.group("date"))
            if year is None or int(year.group()) >= oldest:
                found.append((m.start("date"), m.end("date"), "dob"))
    return found


# UK postcodes: outward code (area, district), inward code (sector, unit): "SW1A 2AA", "bs8 1tx".
_UK_AREAS = frozenset(
    """AB AL B BA BB BD BH BL BN BR BS BT CA CB CF CH CM CO CR CT CV CW DA DD DE DG DH DL DN DT DY E EC EH EN EX
    FK FY G GL GU GY HA HD HG HP HR HS HU HX IG IM IP IV JE KA KT KW KY L LA LD LE LL LN LS LU M ME MK ML N NE NG
    NN NP NR NW OL OX PA PE PH PL PO PR RG RH RM S SA SE SG SK SL SM SN SO SP SR SS ST SW SY TA TD TF TN TQ TR TS
    TW UB W WA WC WD WF WN WR WS WV YO ZE""".split()
)
_POSTCODE = re.compile(r"(?<![\w-])(?P<area>[A-Za-z]{1,2})\d[A-Za-z\d]?\s?\d(?P<unit>[A-Za-z]{2})(?![\w-])")
_ORDINAL = re.compile(r"\d(?:st|nd|rd|th)$", re.I)


def _postcodes(text: str) -> list[tuple[int, int, str]]:
    found = []
    for m in _POSTCODE.finditer(text):
        code, letters = m.group(), [ch for ch in m.group() if ch.isalpha()]
        same_case = all(ch.isupper() for ch in letters) or all(ch.islower() for ch in letters)
        if (m.group("area").upper() in _UK_AREAS and same_case and not _ORDINAL.search(code)
                and not set(m.group("unit").upper()) & set("CIKMOV")):  # letters no inward code uses
            found.append((m.start(), m.end(), "postcode"))
    return found


_US_STATES = (
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK "
    "OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR".split()
)
_US_STATE_NAMES = (
    "Alabama|Alaska|Arizona|Arkansas|California|Colorado|Connecticut|Delaware|Florida|Georgia|Hawaii|Idaho"
    "|Illinois|Indiana|Iowa|Kansas|Kentucky|Louisiana|Maine|Maryland|Massachusetts|Michigan|Minnesota"
    "|Mississippi|Missouri|Montana|Nebraska|Nevada|New Hampshire|New Jersey|New Mexico|New York"
    "|North Carolina|North Dakota|Ohio|Oklahoma|Oregon|Pennsylvania|Rhode Island|South Carolina|South Dakota"
    "|Tennessee|Texas|Utah|Vermont|Virginia|Washington|West Virginia|Wisconsin|Wyoming|Puerto Rico"
)
_ZIP = r"(?<![\w-])(\d{5}(?:-\d{4})?)(?![\w-]|[.,]\d)"
# Five digits are a ZIP code after a state ("Austin, TX 78704") or after "zip"; ZIP+4 is one anywhere.
_ZIP_STATE = re.compile(rf"(?:,\s*|\s)(?:{'|'.join(_US_STATES)}|{_US_STATE_NAMES})\.?,?\s+{_ZIP}")
_ZIP_CONTEXT = re.compile(rf"\b(?i:zip(?:\s*code)?|zipcode|postal\s+code)\b[^\n\d]{{0,15}}?{_ZIP}")
_ZIP_PLUS_FOUR = re.compile(r"(?<![\w-])\d{5}-\d{4}(?![\w-]|[.,]\d)")


def _zips(text: str) -> list[tuple[int, int, str]]:
    found = [(m.start(1), m.end(1), "zip") for p in (_ZIP_STATE, _ZIP_CONTEXT) for m in p.finditer(text)]
    for m in _ZIP_PLUS_FOUR.finditer(text):
        if not m.group().endswith("00") or not m.group()[:5].endswith("00"):  # "10000-2000" is a range
            found.append((m.start(), m.end(), "zip"))
    return found


# IBAN length by country (ISO 13616).
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "BY": 28,
    "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19,
    "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}
_IBAN_START = re.compile(r"(?<![\w-])([A-Za-z]{2})\d\d(?=\s?[A-Za-z0-9])")
_IBAN_CUE = re.compile(r"\b(?:iban|bic|swift|account|acct|konto|kontonummer|compte|cuenta|conto|rekening)\b", re.I)


def _iban_ok(compact: str) -> bool:
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def _ibans(text: str) -> list[tuple[int, int, str]]:
    # Written in groups of four or run together, in either case. Its check digits must hold, unless the
    # text says it is an IBAN: a typo in one's own account number is still one's account number.
    found = []
    for m in _IBAN_START.finditer(text):
        length = _IBAN_LENGTHS.get(m.group(1).upper())
        if length is None:
            continue
        i, chars = m.start(), []
        while i < len(text) and len(chars) < length:
            if text[i].isascii() and text[i].isalnum():
                chars.append(text[i].upper())
            elif not (text[i] == " " and chars and text[i + 1 : i + 2].isascii() and text[i + 1 : i + 2].isalnum()):
                break  # one space between groups, no more
            i += 1
        if len(chars) != length or (i < len(text) and (text[i].isalnum() or text[i] in "_-")):
            continue
        compact = "".join(chars)
        if _iban_ok(compact) or _IBAN_CUE.search(text[max(0, m.start() - 40) : m.start()]):
            found.append((m.start(), i, "iban"))
    return found


_PASSPORT = re.compile(
    r"\b(?:passport|passeport|pasaporte|passaporto|reisepass|paspoort|pass(?:port)?\s+(?:no|nr|number))\b"
    # six to ten letters and digits, at least four of them digits: "my passport expires soon" names no number
    r"[^\n\d]{0,30}?(?<![\w-])(?=(?:[A-Za-z]*\d){4})([A-Za-z0-9]{6,10})(?![\w-])",
    re.I,
)


def _passports(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(1), m.end(1), "passport") for m in _PASSPORT.finditer(text)]


# Current UK plates need no cue ("AB12 CDE": letters I, Q and Z are never used where they are excluded);
# any other format only after a cue, upper case, with letters and at least two digits.
_PLATE_UK = re.compile(r"(?<![\w-])[A-HJ-PR-Y][A-HJ-PR-Y]\d\d ?[A-HJ-PR-Z]{3}(?![\w-])")
_PLATE_CONTEXT = re.compile(
    r"(?i:\b(?:(?:number|licen[cs]e|registration|reg|car|tag|plate)\s+plates?|plates?|plate\s+number"
    r"|reg(?:istration)?(?:\s+(?:number|no|mark|plate))?|car\s+reg|tag\s+number|registered\s+as"
    r"|plaque(?:\s+d['’]immatriculation)?|immatriculation|kennzeichen|nummernschild|matr[ií]cula|targa|kenteken)\b)"
    r"[^\n\d]{0,20}?(?<![\w-])([A-Z0-9]{1,4}(?:[ -]?[A-Z0-9]{1,4}){0,3})(?![\w-])"
)
_PLATE_GROUP = re.compile(r"[A-Z0-9]+")


def _plates(text: str) -> list[tuple[int, int, str]]:
    found = [(m.start(), m.end(), "plate") for m in _PLATE_UK.finditer(text)]
    for m in _PLATE_CONTEXT.finditer(text):
        groups = list(_PLATE_GROUP.finditer(m.group(1)))
        for n in range(len(groups), 0, -1):  # "ABC-4321 NY": drop trailing groups until it reads as a plate
            plate = m.group(1)[: groups[n - 1].end()]
            alnum = [ch for ch in plate if ch.isalnum()]
            digits = sum(ch in _DIGITS for ch in alnum)
            if 4 <= len(alnum) <= 8 and digits >= 2 and digits < len(alnum):
                found.append((m.start(1), m.start(1) + len(plate), "plate"))
                break
    return found


# "@name" (not an e-mail address, a time or a decorator), a username after "my snapchat is", and the
# username in a profile URL ("instagram.com/name", "linkedin.com/in/name", "youtube.com/@name").
_AT_HANDLE = re.compile(r"(?<![\w@.+-])@([A-Za-z0-9_](?:[A-Za-z0-9_.]{0,28}[A-Za-z0-9_])?)(?![\w@])")
_NOT_HANDLES = frozenset(
    """everyone here channel all room team admin admins mods moderators property staticmethod classmethod
    abstractmethod dataclass override deprecated param return returns throws author see since version
    interface test before after autowired component functools media import keyframes font-face
    supports""".split()
)
_TIME = re.compile(r"\d{1,2}(?:[:.h]\d\d)?(?:am|pm)?", re.I)
_MEASURE = re.compile(r"\d+(?:[.,]\d+)?[a-z]{0,3}", re.I)  # "2am", "10.5k", "2hrs", "3rd": after "ig" (I guess)
_HANDLE_CONTEXT = re.compile(
    r"\b(?:snapchat|snap|insta|instagram|ig|twitter|tiktok|discord|reddit|github|gitlab|telegram|skype|xbox|psn"
    r"|steam|twitch|gamertag|gamer\s+tag|username|user\s+name|handle|kik|wechat|threads|bluesky|mastodon|roblox"
    r"|epic|battle\.?net|ign)\b"
    r"(?:\s+(?:name|id|handle|username|user|tag|account|acc|profile))?\s*(?:is|:|=|-|–|'s|’s)?\s*"
    r"(?<![\w@])([A-Za-z0-9_](?:[A-Za-z0-9_.-]{1,30}[A-Za-z0-9_])?(?:#\d{4})?)(?![\w@/]|\.\w)",
    re.I,
)
_SOCIAL_URL = re.compile(
    r"(?<![\w.-])(?:https?://)?(?:(?:www|m|mobile|[a-z]{2})\.)?"
    r"(?P<site>twitter|x|instagram|facebook|fb|tiktok|linkedin|github|gitlab|reddit|youtube|twitch|medium|pinterest"
    r"|t|snapchat|threads|bsky|vk|soundcloud|behance|dribbble|flickr|tumblr|patreon|onlyfans|ko-fi|buymeacoffee"
    r"|linktr|strava|last|letterboxd|keybase|mastodon)"
    r"\.(?:com|tv|me|net|app|ee|fm|io|social|co\.uk)/(?P<path>[^\s?#]*)",
    re.I,
)
_URL_PREFIXES = {"in": 1, "pub": 1, "u": 1, "user": 1, "c": 1, "profile": 1, "add": 1, "athletes": 1, "people": 1}
_URL_NOT_USERS = frozenset(
    """watch search explore hashtag hashtags p reel reels tv stories share sharer sharer.php intent i home settings
    login signup about help privacy terms legal jobs company school feed messages notifications groups pages
    events marketplace trending topics features pricing enterprise orgs sponsors r status results playlist shorts
    embed channel oauth apps developers business ads policies compose discover tag tags topic live directory
    videos download new blog docs site contact careers press support popular following bookmarks lists
    collections gist logout join""".split()
)


def _handles(text: str) -> list[tuple[int, int, str]]:
    found = []
    for m in _AT_HANDLE.finditer(text):
        name = m.group(1)
        if name.lower() not in _NOT_HANDLES and not _TIME.fullmatch(name) and not name.isdigit():
            found.append((m.start(1), m.end(1), "handle"))
    for m in _HANDLE_CONTEXT.finditer(text):
        name = m.group(1)
        letters = sum(ch.isalpha() for ch in name)
        marked = any(ch in _DIGITS or ch in "_.#" for ch in name)  # "my twitter is down" names nobody
        if letters >= 2 and marked and not _MEASURE.fullmatch(name):
            found.append((m.start(1), m.end(1), "handle"))
    for m in _SOCIAL_URL.finditer(text):
        path, offset = m.group("path"), m.start("path")
        segments = path.split("/")
        k = _URL_PREFIXES.get(segments[0].lower(), 0)
        if k >= len(segments):
            continue
        user = segments[k]
        start = offset + sum(len(seg) + 1 for seg in segments[:k])
        if user.startswith("@"):
            user, start = user[1:], start + 1
        user = user.rstrip(".,;:!)'\"")
        if len(user) >= 2 and any(ch.isalpha() for ch in user) and (k or user.lower() not in _URL_NOT_USERS):
            found.append((start, start + len(user), "handle"))
    return found


# ---------------------------------------------------------------------------------------------
# Personal names.

_NAMES, _CAPITALISED, _MID_SENTENCE, _CUE = "names", "capitalised", "mid-sentence", "cue"  # given_names.txt
_WORD = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")  # O'Brien, Mary-Jane, Zoë; "Don't" is one word
_RELATIONS = (
    r"(?:friend|bff|buddy|pal|mate|wife|husband|partner|spouse|fianc[eé]e?|girlfriend|boyfriend|gf|bf|son"
    r"|daughter|kid|child|baby|brother|sister|bro|sis|mom|mum|mother|dad|father|stepmom|stepdad|stepson"
    r"|stepdaughter|cousin|uncle|aunt|auntie|niece|nephew|grandson|granddaughter|grandma|grandpa|grandmother"
    r"|grandfather|granny|boss|manager|colleague|coworker|co-worker|neighbou?r|roommate|flatmate|classmate"
    r"|teacher|tutor|coach|doctor|therapist|dentist|lawyer|landlord|ex)"
)
# Cues are matched against the text just before a word. An identity cue says the next word is a
# name whatever it looks like ("my name is will"); a relation cue or a title introduces a person
# ("my son Will", "Dr. Okafor"); a soft cue only vouches for a capitalised given name ("Hi Grace",
# "Thanks, Will", "I'm Mark"), since "I'm Happy" or "Hello World" name nobody.
_IDENTITY_CUE = re.compile(
    r"(?:\b(?:my|his|her|their|your|our)\b(?:\s+[\w'’-]+){0,2}?\s+name(?:'s|’s|\s+is|\s+was)|\bname\s*[:=]"
    r"|\bcall me|\bi go by|\bnamed|\b(?:is|am|was|are|be|i'm|i’m) called|\bknown as)\s*$",
    re.I,
)
_RELATION_CUE = re.compile(
    rf"(?:\b(?:my|our|his|her|their|your)\s+(?:(?:best|old|little|big|baby|younger|older|twin|late|dear)[- ])?"
    rf"{_RELATIONS}(?:,|\s+is|\s+was)?|\b(?:mr|mrs|ms|mx|dr|prof|professor|(?-i:Miss))\.?"
    r"|\b(?-i:Grandma|Grandpa|Granny|Grandad|Granddad|Gran|Nana|Nan|Aunt|Auntie|Aunty|Uncle|Cousin))\s*$",
    re.I,
)
_SOFT_CUE = re.compile(
    r"(?:(?:^|[^\w'’])(?:i'm|i’m|im|i am|this is|it's|it’s|hi|hello|hey|hiya|dear|thanks|thank you|thx|bye"
    r"|goodbye|congrats|congratulations|good morning|good night)[,!]?"
    r"|(?:^|[^\w'’])(?:best|love|regards|sincerely|cheers|xoxo|yours|signed|warmly),|(?:^|\n)[ \t]*[-–—~]+)\s*$",
    re.I,
)
# Two soft cues vouch for more than a listed name. A sign-off ("Signed,", "Regards,", "-- ") takes any
# capitalised name that ends its line ("Signed, Beatrix Holloway"); "I'm" or "I am" takes any two
# capitalised words that read as a first and a last name ("I'm Rosalind Achebe"). "This is" does not:
# it introduces titles as often as people ("This is Spinal Tap").
_SIGN_OFF_CUE = re.compile(
    r"(?:(?:^|[^\w'’])(?:best|love|regards|sincerely|cheers|xoxo|yours|signed|warmly|thanks),"
    r"|(?:^|\n)[ \t]*[-–—~]+)\s*$",
    re.I,
)
_SELF_CUE = re.compile(r"(?:^|[^\w'’])(?:i'm|i’m|im|i am)\s*$", re.I)
# Capitalised words that address or describe someone without naming them ("Dear Hiring Manager",
# "Best regards, Team", "me and Dad"): never a name by the sign-off, introduction or "and" rules.
_NOT_NAMES = frozenset(
    """team manager managers customer customers service services support hiring committee department office
    sir madam everyone all guys folks friends friend colleagues members staff admin administrator moderator
    user users reader readers mom mum dad mommy mummy daddy mama papa grandma grandpa granny gran nana nan
    grandad granddad auntie aunt uncle cousin sis bro babe baby honey darling love sweetie boss doc teacher
    coach professor officer valued whom concern human bot assistant chatbot world family kids children""".split()
)
# All-caps words that are listed names but read as abbreviations when shouted in a mixed-case line.
_ACRONYMS = frozenset("asap fyi imho tldr rofl lmao nasa nato fifa uefa unicef unesco opec espn ikea".split())
_COORDINATORS = frozenset({"and", "or"})
# Words after which a given name is a place, an institution or a public figure, not a private person.
_HEADS = frozenset(
    "st saint san santa santo sao fort ft mount mt lake port cape king queen prince princess lord lady sir dame"
    " pope president senator governor general emperor empress captain".split()
)
_ARTICLES = frozenset({"a", "an", "the"})  # "I'm a Leo", "to the Max": a person's name takes none
_PRONOUNS = frozenset("i you he she it we they me him her us them this that there be not".split())
_CONTRACTION = re.compile(r"(?:'m|'re|'ve|'ll|'d|n't)$")
# A capitalised run ending in one of these names a place or an organisation ("Hudson River").
_PLACE_TAILS = frozenset(
    "street avenue road boulevard university college school academy institute hospital clinic airport station"
    " bridge county city island islands bay lake river mountain mountains valley beach square museum stadium"
    " arena center centre cathedral mall hotel library foundation inc corp corporation company llc ltd group"
    " north south east west prize award awards day band films studios records games pictures productions"
    " entertainment".split()
)
_POSSESSIVES = ("'s", "’s", "'S", "’S")
_SENTENCE_BREAKS = frozenset(".!?\n:;\"“(")
_ABBREVIATIONS = frozenset("mr mrs ms mx dr prof st mt ft jr sr vs".split())  # their period ends no sentence
_PARTICLES = frozenset("van von der de del della da di du le la bin ibn al el dos das".split())  # Ludwig van B.
# Capitalised words that end a name or cannot be one even after "my friend" or "Hi".
_STOPWORDS = frozenset(
    """a an the and or but nor so yet if then than that this these those there here where when what who whom
    whose which why how i me my mine you your yours he him his she her hers it its we us our ours they them
    their theirs is are was were be been being am do does did done have has had will would shall should can
    could may might must not no yes yeah yep nope ok okay oh ah hi hello hey bye thanks thank please sorry
    lol lmao omg haha wow well just also too very really in on at to from of for with by about as into onto
    over under after before since until till during without within through between among against up down
    out off again all any some every each both either neither other another such only own same more most
    less least much many few lot lots one two three first last next new old good great bad nice big small
    little said says say told tell asked ask went go goes going gone got get gets like love know knew think
    thought want need see saw look come came make made take took today tomorrow yesterday tonight now later
    soon always never sometimes maybe perhaps anyway everyone everybody someone somebody anyone nobody
    monday tuesday wednesday thursday friday saturday sunday january february march april may june july
    august september october november december christmas easter halloween thanksgiving
    mr mrs ms miss dr prof sir madam dear best regards cheers sincerely because hence though however
    actually honestly basically literally seriously btw pretty cool right sure sorry thanks haha hmm""".split()
)
_SURNAMES = frozenset(
    """adams aguilar ahmed alexander allen alvarado alvarez anderson andrews armstrong arnold bailey baker
    barnes bennett boyd bradley bryant campbell carpenter carroll carter castillo castro chavez chen clark
    clarke cohen cole coleman collins cooper crawford cruz cunningham daniels davies davis delgado diaz dixon
    duncan dunn edwards elliott ellis evans ferguson fernandez fischer fisher flores foster garcia gardner
    garza gibson goldberg gomez gonzales gonzalez gordon graham gupta gutierrez guzman hamilton hansen harris
    harrison hassan hawkins hayes henderson henry hernandez herrera hoffman holmes howard huang hudson hughes
    hussain ibrahim ivanov jackson james jenkins jimenez johnson johnston jones jordan kelley kelly kennedy
    khan kim kowalski kumar lawrence levy lewis li lin liu lopez marshall martinez mason matthews mcdonald
    medina mendez mendoza meyer miller mitchell moore morales moreno morgan morris mueller muller munoz
    murphy murray myers nakamura nelson nguyen nichols novak o'brien o'connor olson ortiz owens palmer parker
    patel patterson payne pena perkins perry peterson petrov phillips porter powell ramirez ramos reddy
    reyes reynolds richards richardson riley rivera roberts robertson robinson rodriguez romero ross rossi
    ruiz russell russo ryan salazar sanchez sandoval santos sato schmidt schneider schwartz scott shah
    sharma shaw silva simmons simpson singh smith snyder soto spencer stephens stevens stewart sullivan
    suzuki tanaka taylor thomas thompson torres tran turner vargas vasquez vazquez wagner walker wallace
    wang washington watson weaver webb weber williams willis wilson wright wu xu yamamoto yang zhang zhao
    zhou""".split()
)


class _Word(NamedTuple):
    start: int
    end: int  # a possessive "'s" is left outside the span: "[PII:…]'s car"
    key: str  # folded and lower-cased, for the lists
    shape: str  # "title" (Sarah), "lower" (sarah; also SARAH in an all-caps line), "upper" (an acronym)
    sentence_start: bool
    joined: bool  # the next word follows after one space, so it may continue this name


def _names(text: str, keep: list[tuple[int, int]]) -> list[tuple[int, int, str]]:
    """Name spans. A word is a name when one of these holds, checked in this order:

    - it is a single-word entity (Jordan, Austin): only with a cue or a listed surname after it;
    - it is inside a longer well-known entity, a URL, a handle or a file name: never;
    - an identity cue ("my name is") precedes it: any listed given name, or a capitalised word;
    - a relation cue or title ("my wife", "Dr.") precedes it: a capitalised word, or a listed name
      that is not also an ordinary lower-case word;
    - a soft cue ("Hi", "Thanks,", "I'm") precedes it: a capitalised listed name (not May or June);
      after a sign-off ("Signed,") also an unlisted capitalised name that ends its line, and after
      "I'm" an unlisted capitalised first and last name ("I'm Rosalind Achebe");
    - otherwise by its section of given_names.txt: [names] always (in capitals too, "MARCUS forgot",
      from four letters on), [capitalised] when capitalised, [mid-sentence] when capitalised after a
      lower-case word and not followed by a non-surname capital (so "Good Will Hunting" and "I Will
      Always Love You" stay), [cue] never;
    - it follows a name found just before and "and" or "or": a listed name or surname in any case, or
      a capitalised word ("olivia and jackson", "Hamid and Leila"), unless it is a well-known entity.
    A name then takes the capitalised words or listed surnames that follow it ("Sarah Jane Smith").
    """
    words = _words(text)
    given = _given_names()
    skip = [(m.start(), m.end()) for m in _URL.finditer(text)]
    found = []
    last_name = -2  # index of the last word of the latest name found
    i = 0
    while i < len(words):
        w = words[i]
        klass = given.get(w.key)
        prev = words[i - 1] if i and not w.sentence_start else None
        unknown_lower = klass is None and w.shape == "lower" and w.key not in _SURNAMES
        if unknown_lower or _covering(skip, w.start, w.end) or not _free_standing(text, w):
            i += 1
            continue
        entity = _covering(keep, w.start, w.end)
        if entity is not None and entity != (w.start, w.end):
            i += 1
            continue
        if i and words[i - 1].key in _HEADS and text[words[i - 1].end : w.start].strip(". ") == "":
            i += 1
            continue
        before = text[max(0, w.start - 48) : w.start]
        if _IDENTITY_CUE.search(before):
            cue, ok = "identity", klass is not None or (w.shape != "lower" and _could_be_name(w))
        elif _RELATION_CUE.search(before):
            cue = "relation"
            capitalised = w.shape != "lower" and (klass is not None or _could_be_name(w))
            ok = capitalised or klass in (_NAMES, _CAPITALISED) or w.key in _SURNAMES
        elif _SOFT_CUE.search(before):
            cue = "soft"
            ok = (w.shape == "title" and klass in (_NAMES, _CAPITALISED, _MID_SENTENCE)) or (
                w.shape == "upper" and klass == _NAMES)
            unlisted = klass is None and w.shape == "title" and _could_be_name(w) and w.key not in _NOT_NAMES
            if not ok and unlisted and entity is None:
                if _SIGN_OFF_CUE.search(before):
                    cue, ok = "sign-off", True
                elif _SELF_CUE.search(before):
                    cue, ok = "self", True
        else:
            cue, ok = None, _by_list(words, i, klass, prev)
            named = klass is not None or w.key in _SURNAMES  # "olivia and jackson", not "Emma and Paris"
            if _coordinated(words, i, last_name) and (entity is None or named):
                listed = klass == _NAMES or w.key in _SURNAMES
                capitalised = w.shape == "title" and klass != _CUE and _could_be_name(w) and w.key not in _NOT_NAMES
                if ok or listed or capitalised:
                    cue, ok = "and", True
        if ok and cue in (None, "soft") and prev is not None and prev.key in _ARTICLES:
            ok = False
        if not ok:
            i += 1
            continue
        last = _extend(words, i, keep)
        if last is None:  # the run ends in "River", "University", ...: a place, not a person
            i += 1
            continue
        # "I flew to Jordan" and "Lincoln Park" stay; "Jordan Smith" is somebody else.
        if entity is not None and cue is None and (last == i or words[i + 1].key not in _SURNAMES):
            i += 1
            continue
        if cue == "sign-off" and text[words[last].end :].split("\n", 1)[0].strip(" .,!") != "":
            i += 1  # "Thanks, Customer Service team for ..." is no signature
            continue
        surname = words[last]
        if cue == "self" and (last == i or surname.key in _NOT_NAMES or _covering(keep, surname.start, surname.end)):
            i += 1  # "I'm Batman" and "I'm Very Tired" name nobody; two capitalised words may
            continue
        found.append((w.start, words[last].end, "name"))
        last_name = last
        i = last + 1
    return found


def _coordinated(words: list[_Word], i: int, last_name: int) -> bool:
    """words[i] follows "<the name just found> and" ("olivia and jackson")."""
    return (i >= 2 and last_name == i - 2 and words[i - 1].key in _COORDINATORS and words[i - 2].joined
            and words[i - 1].joined and not words[i].sentence_start)


def _by_list(words: list[_Word], i: int, klass: str | None, prev: _Word | None) -> bool:
    """Whether a word with no cue before it is a name, from how given_names.txt grades it."""
    w = words[i]
    nxt = words[i + 1] if i + 1 < len(words) and w.joined else None
    if klass == _NAMES:  # in capitals in a mixed-case line only from four letters on: "ALI" may be an acronym
        return w.shape != "upper" or (len(w.key) >= 4 and w.key not in _ACRONYMS)
    if klass == _CAPITALISED:
        return w.shape == "title"
    if klass == _MID_SENTENCE and w.shape == "title":
        if nxt is not None and nxt.key in _SURNAMES and nxt.shape == "title":  # "Bill Johnson called"
            return True
        after_lower = prev is not None and (prev.shape != "title" or prev.key == "i")
        follows = words[i + 1].key if i + 1 < len(words) and not words[i + 1].sentence_start else ""
        # "apps Will you get paid?": a run-on sentence, and the word is a verb before a pronoun.
        return after_lower and (nxt is None or nxt.shape != "title") and follows not in _PRONOUNS
    return False


def _extend(words: list[_Word], i: int, keep: list[tuple[int, int]]) -> int | None:
    """Index of the last word of the name starting at words[i]; None when the run names a place."""
    last = i
    while last - i < 3 and words[last].joined and last + 1 < len(words):
        nxt = words[last + 1]
        if nxt.shape == "title" and nxt.key in _PLACE_TAILS:
            return None
        entity = _covering(keep, nxt.start, nxt.end)
        if entity is not None and entity != (nxt.start, nxt.end):
            break  # "Sarah Taylor Swift": the entity is not part of Sarah's name
        if not (_surname_like(nxt, words[i].shape) or _particle(words, last + 1)):
            break
        last += 1
    return last


def _surname_like(w: _Word, first_shape: str) -> bool:
    if w.shape == "title":
        return _could_be_name(w) and (_given_names().get(w.key) != _CUE or w.key in _SURNAMES)
    if w.shape == "upper":  # "Name: KWAME ASANTE" in a mixed-case message
        return first_shape == "upper" and _could_be_name(w) and w.key not in _ACRONYMS | _NOT_NAMES and (
            _given_names().get(w.key) != _CUE)
    return first_shape != "title" and w.key in _SURNAMES  # "my name is john smith"


def _could_be_name(w: _Word) -> bool:
    """A capitalised word that is not a function word or a contraction ("I'm", "Don't")."""
    return w.key not in _STOPWORDS and not _CONTRACTION.search(w.key)


def _particle(words: list[_Word], j: int) -> bool:
    """"van", "de la" in "Maria de la Cruz": part of a name only when a capitalised word follows."""
    while words[j].key in _PARTICLES and words[j].joined and j + 1 < len(words):
        j += 1
        if words[j].shape == "title":
            return True
    return False


def _words(text: str) -> list[_Word]:
    mixed_case: dict[int, bool] = {}  # line start -> whether the line has a lower-case letter
    spans = []  # (start, end without a possessive 's, end)
    for m in _WORD.finditer(text):
        spans.append((m.start(), m.end() - 2 if m.group()[-2:] in _POSSESSIVES else m.end(), m.end()))
    words = []
    for n, (start, end, raw_end) in enumerate(spans):
        word = text[start:end]
        shape = _shape(text, word, start, end, mixed_case)
        gap_before = text[spans[n - 1][2] : start] if n else ""
        after_abbreviation = gap_before == ". " and _key(text[spans[n - 1][0] : spans[n - 1][1]]) in _ABBREVIATIONS
        if n == 0:
            sentence_start = True
        elif gap_before == " " or after_abbreviation:  # "Dr. Okafor", "St. Louis" continue the sentence
            sentence_start = False
        else:
            sentence_start = any(ch in _SENTENCE_BREAKS for ch in gap_before)
        gap_after = text[raw_end : spans[n + 1][0]] if n + 1 < len(spans) else None
        joined = raw_end == end and (gap_after == " " or (len(word) == 1 and shape == "title" and gap_after == ". "))
        words.append(_Word(start, end, _key(word), shape, sentence_start, joined))
    return words


def _shape(text: str, word: str, start: int, end: int, mixed_case: dict[int, bool]) -> str:
    if not word[0].isupper():
        return "lower"
    if len(word) == 1 or not word.isupper():
        return "title"
    line_start = text.rfind("\n", 0, start) + 1
    if line_start not in mixed_case:  # once per line: a long shouted line has many capitalised words
        line_end = text.find("\n", end)
        line = text[line_start : line_end if line_end != -1 else len(text)]
        mixed_case[line_start] = any(ch.islower() for ch in line)
    # In an all-caps line case says nothing: SARAH is read like sarah. Elsewhere it is an acronym.
    return "upper" if mixed_case[line_start] else "lower"


def _free_standing(text: str, w: _Word) -> bool:
    """False for words glued to digits or symbols: handles, hashtags, file names, "john123"."""
    before = text[w.start - 1] if w.start else " "
    after = text[w.end] if w.end < len(text) else " "
    return before not in "@#_/\\" and not before.isdigit() and after not in "@_/\\" and not after.isdigit()


def _covering(spans: list[tuple[int, int]], start: int, end: int) -> tuple[int, int] | None:
    for span in spans:
        if span[0] <= start and end <= span[1]:
            return span
    return None


# ---------------------------------------------------------------------------------------------
# The two lists shipped beside this module, and the folding that makes them ignore accents.


def _fold_char(ch: str) -> str:
    if ch.isascii():
        return ch
    if ch == "’":
        return "'"
    base = unicodedata.normalize("NFKD", ch)[:1]  # "é" -> "e" + combining accent: keep the "e"
    return base if base.isascii() else ch


def _fold(text: str) -> str:
    """Strip accents one character for one, so offsets in the folded text are offsets in `text`."""
    return text if text.isascii() else "".join(_fold_char(ch) for ch in text)


def _key(word: str) -> str:
    return _fold(word).lower()


@cache
def _given_names() -> dict[str, str]:
    """Folded given name -> its section of given_names.txt (how much evidence it needs)."""
    grades, section = {}, _NAMES
    for line in (_DATA / "given_names.txt").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif line and not line.startswith("#"):
            grades.update((_key(name), section) for name in line.split())
    return grades


@cache
def _entity_index() -> dict[str, re.Pattern[str]]:
    """First word of an entity (folded, lower case) -> a pattern for the entities starting with it.

    Trying one pattern per candidate word is several times faster than one alternation of all
    entities tried at every character.
    """
    lines = (_DATA / "well_known_entities.txt").read_text(encoding="utf-8").splitlines()
    by_first: dict[str, set[str]] = {}
    for line in lines:
        phrase = _fold(line.strip())
        if phrase and not phrase.startswith("#"):
            by_first.setdefault(re.match(r"\w+", phrase).group().lower(), set()).add(phrase)
    index = {}
    for first, phrases in by_first.items():
        # Longest first, because the regex engine takes the first alternative that matches.
        alternatives = [r"\s+".join(map(re.escape, p.split())) for p in sorted(phrases, key=len, reverse=True)]
        index[first] = re.compile("(?:" + "|".join(alternatives) + r")(?!\w)", re.I)
    return index


def _entity_spans(text: str) -> list[tuple[int, int]]:
    folded, index, spans = _fold(text), _entity_index(), []
    for word in re.finditer(r"\w+", folded):
        pattern = index.get(word.group().lower())
        if pattern is not None and (not spans or word.start() >= spans[-1][1]):
            match = pattern.match(folded, word.start())
            if match:
                spans.append((match.start(), match.end()))
    return spans
