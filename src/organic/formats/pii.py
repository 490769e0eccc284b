"""Find and scrub personal data (PII) in chat text before a public release.

The BB3x data card promises that released conversations carry no personal data: personal names,
e-mail addresses, phone numbers, street addresses, social security numbers, card numbers and IP
addresses are replaced, while well-known entities (Taylor Swift, Paris, Apple) are kept. `Scrubber`
does that for the release step:

- text PII (names, e-mail and IP addresses, the street name of an address) becomes a token such as
  ``[PII:3f9a0c1e2b]``: HMAC-SHA256 of the normalised text under a secret salt, truncated. The same
  text gives the same token within a release, so "Sarah ... Sarah" still corefers, and without the
  salt a token can neither be reversed nor checked against a guessed name.
- numeric PII (phone, SSN and card numbers; street and flat numbers) keeps its shape, separators and
  length, but every digit is redrawn by a generator seeded from the HMAC, so it is stable within a
  release and never the original.

Everything runs offline without a model. Numbers, e-mail and IP addresses are regular expressions
with validation (Luhn for bare card numbers, ``ipaddress`` for IPv6). Names combine context cues
("my name is", "my wife", "Hi", "Thanks,") with the graded list in ``given_names.txt`` and the
entities in ``well_known_entities.txt``; `_names` states the rules. Where the two goals collide the
rules keep ordinary text ("Will you help me?", "May is my favourite month") rather than catch every
name, and a name no cue or list reveals ("Xochitl came over") is missed.

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
from functools import cache
from pathlib import Path
from typing import NamedTuple

PII_KINDS: tuple[str, ...] = ("name", "email", "phone", "address", "ssn", "card", "ip")

_DATA = Path(__file__).parent
_TOKEN_HEX = 10  # 40 bits: distinct names in one release almost never share a token
_NUMERIC_KINDS = frozenset({"phone", "ssn", "card"})  # "address" mixes digits and a street name
# Where detectors claim overlapping text, the more specific pattern wins ("a@b.com" is an e-mail
# address, not a name "a"; "4111 1111 1111 1111" is a card, not a phone number).
_PRIORITY = {"email": 6, "ip": 5, "card": 4, "ssn": 3, "phone": 2, "address": 1, "name": 0}
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
        found = [*_emails(text), *_ips(text), *_cards(text), *_ssns(text), *_phones(text), *_addresses(text)]
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
        if kind == "address":
            parts = _ADDRESS_PARTS.match(original)
            if parts is None:  # cannot happen for spans from _addresses; never leak if it does
                return self._token(original)
            head, tail = original[: parts.start("street")], original[parts.end("street") :]
            return self._randomise_digits(head) + self._token(parts.group("street")) + self._randomise_digits(tail)
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
            redrawn = _redraw_digits(rng, original)
            if redrawn != original:
                return redrawn


def _redraw_digits(rng: random.Random, text: str) -> str:
    out = []
    for i, ch in enumerate(text):
        if ch not in _DIGITS:
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
_SSN_CONTEXT = re.compile(
    r"\b(?:ssn|ss#|social security(?: number| no\.?| #)?)\D{0,20}?(?<!\d)(\d{3}[ -]?\d{2}[ -]?\d{4})(?!\w|-\d)", re.I
)
_PHONES = (  # (pattern, fewest digits, most digits)
    # international: +44 20 7946 0958, +1 (415) 555-0132
    (re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?(?:\(\d{1,4}\)|\d{1,5})){2,6}(?!\w)"), 8, 15),
    # North American: (555) 123-4567, 555-123-4567, 555.123.4567, 1-800-555-0199
    (re.compile(r"(?<![\w+.-])(?:1[ .-])?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}(?!\w|[.-]\d)"), 10, 11),
    # national with a trunk 0: 020 7946 0958, 07700 900123
    (re.compile(r"(?<![\w+.-])0\d{2,4}[ -]\d{3,4}[ -]?\d{3,4}(?!\w|[.-]\d)"), 10, 11),
)
# Bare runs ("5551234567", "555 1234") read as phone numbers only when the text says so.
_PHONE_CONTEXT = re.compile(
    r"\b(?:phone|cell|cellphone|mobile|tel|telephone|whatsapp|text me|call me|reach me|my number|his number"
    r"|her number|your number)\b[^\d\n]{0,20}?(\+?\(?\d[\d ().-]{5,18}\d)(?!\w)",
    re.I,
)
_STREET_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Circle|Cir"
    r"|Parkway|Pkwy|Highway|Hwy|Square|Sq|Trail|Crescent|Close|Alley|Plaza|Grove|Mews|Row)"
)
# A sentence's full stop after "Street" stays outside the span; "St., Apt 4" takes its own period.
_UNIT = r"(?:\.?,?\s+(?i:Apt|Apartment|Unit|Suite|Ste|Flat)\.?\s*#?\s*\w{1,5}\b|\s*#\s*\d{1,5}\b)?"
_ADDRESS = re.compile(
    r"(?<![\w.,$£€-])\d{1,6}[A-Za-z]?\s+"  # house number: 42, 221B
    r"(?:(?:[NSEW]|North|South|East|West)\.?\s+)?"
    r"(?:[A-Z][\w'’.-]*|\d{1,3}(?:st|nd|rd|th))(?:\s+[A-Z][\w'’.-]*){0,3}\s+"  # Maple, 5th, Martin Luther King Jr
    rf"(?i:{_STREET_SUFFIX})\b{_UNIT}"
)
# In lower case ("i live at 42 maple street") the street words could be any words, so only after
# a phrase that announces an address: "3 miles down the road" must stay.
_ADDRESS_CONTEXT = re.compile(
    r"\b(?:live[sd]? at|living at|address(?: is)?:?|located at|(?:house|home|flat) is at|moved to|"
    r"(?:send|ship|deliver|mail) (?:it|them|this) to)\s+"
    rf"(\d{{1,6}}[a-z]?\s+(?:[^\W\d_][\w'’.-]*\s+){{1,4}}{_STREET_SUFFIX}\b{_UNIT})",
    re.I,
)
_ADDRESS_PARTS = re.compile(rf"\d+[A-Za-z]?\s+(?P<street>.+)\s+{_STREET_SUFFIX}\b", re.I | re.S)
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
    return found + [(m.start(1), m.end(1), "address") for m in _ADDRESS_CONTEXT.finditer(text)]


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
    rf"{_RELATIONS}(?:,|\s+is|\s+was)?|\b(?:mr|mrs|ms|mx|dr|prof|professor|(?-i:Miss))\.?)\s*$",
    re.I,
)
_SOFT_CUE = re.compile(
    r"(?:(?:^|[^\w'’])(?:i'm|i’m|im|i am|this is|it's|it’s|hi|hello|hey|hiya|dear|thanks|thank you|thx|bye"
    r"|goodbye|congrats|congratulations|good morning|good night)[,!]?"
    r"|(?:^|[^\w'’])(?:best|love|regards|sincerely|cheers|xoxo|yours),|(?:^|\n)[ \t]*[-–—~]+)\s*$",
    re.I,
)
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
    - otherwise by its section of given_names.txt: [names] always, [capitalised] when capitalised,
      [mid-sentence] when capitalised after a lower-case word and not followed by a non-surname
      capital (so "Good Will Hunting" and "I Will Always Love You" stay), [cue] never.
    A name then takes the capitalised words or listed surnames that follow it ("Sarah Jane Smith").
    """
    words = _words(text)
    given = _given_names()
    skip = [(m.start(), m.end()) for m in _URL.finditer(text)]
    found = []
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
            cue, ok = "soft", w.shape == "title" and klass in (_NAMES, _CAPITALISED, _MID_SENTENCE)
        else:
            cue, ok = None, _by_list(words, i, klass, prev)
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
        found.append((w.start, words[last].end, "name"))
        i = last + 1
    return found


def _by_list(words: list[_Word], i: int, klass: str | None, prev: _Word | None) -> bool:
    """Whether a word with no cue before it is a name, from how given_names.txt grades it."""
    w = words[i]
    nxt = words[i + 1] if i + 1 < len(words) and w.joined else None
    if klass == _NAMES:
        return w.shape != "upper"
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
    spans = []  # (start, end without a possessive 's, end)
    for m in _WORD.finditer(text):
        spans.append((m.start(), m.end() - 2 if m.group()[-2:] in _POSSESSIVES else m.end(), m.end()))
    words = []
    for n, (start, end, raw_end) in enumerate(spans):
        word = text[start:end]
        shape = _shape(text, word, start, end)
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


def _shape(text: str, word: str, start: int, end: int) -> str:
    if not word[0].isupper():
        return "lower"
    if len(word) == 1 or not word.isupper():
        return "title"
    line_end = text.find("\n", end)
    line = text[text.rfind("\n", 0, start) + 1 : line_end if line_end != -1 else len(text)]
    # In an all-caps line case says nothing: SARAH is read like sarah. Elsewhere it is an acronym.
    return "upper" if any(ch.islower() for ch in line) else "lower"


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
