"""PII scrubbing for the release: recall on a table of chat lines, no damage to ordinary text.

Two kinds of evidence. The tables below (PII_CASES, CLEAN_CASES) are the examples the detectors were
written and tuned against. The planted set and the clean set in tests/fixtures (pii_planted.jsonl,
pii_clean.jsonl) were written before the detectors for dates of birth, postcodes, ZIP codes, IBANs,
passport and plate numbers and handles existed, measured once on the old scrubber (recall 0.374, 68 of
182 spans), and are never edited to suit the code: `bench/pii.py` defines when a planted span counts as
caught, and the tests here use that same definition.
"""

import hashlib
import importlib.util
import re
from pathlib import Path

import pytest

from organic.formats.pii import PII_KINDS, PIISpan, Scrubber

SALT = b"a fixed salt for tests only"
TOKEN = re.compile(r"\[PII:[0-9a-f]{10}\]")

# (chat line, PII substrings that must be gone after scrubbing, well-known entities that must stay)
PII_CASES = [
    # names after an identity cue
    ("Hi, my name is Sarah Johnson.", ["Sarah Johnson"], []),
    ("my name's mike, nice to meet you", ["mike"], []),
    ("I'm Priya and I work as a nurse.", ["Priya"], []),
    ("I am Daniel, how are you?", ["Daniel"], []),
    ("You can call me Xochitl.", ["Xochitl"], []),
    ("They call me Ziggy.", ["Ziggy"], []),
    ("This is Kevin from accounting.", ["Kevin"], []),
    ("Her name is Aisha Khan.", ["Aisha Khan"], []),
    ("We named the baby Olivia.", ["Olivia"], []),
    ("MY NAME IS JOHN SMITH", ["JOHN SMITH"], []),
    # names after a relation or a title
    ("My wife Emily loves Taylor Swift.", ["Emily"], ["Taylor Swift"]),
    ("my husband Raj is cooking tonight", ["Raj"], []),
    ("My son Will turned five today.", ["Will"], []),
    ("My daughter Grace started school.", ["Grace"], []),
    ("my boss, Linda Martinez, keeps emailing me", ["Linda Martinez"], []),
    ("I miss my grandma Rosa so much.", ["Rosa"], []),
    ("My friend Jordan said hi.", ["Jordan"], []),
    ("My roommate Zoë is from Berlin.", ["Zoë"], ["Berlin"]),
    ("Dr. Okafor said my results were fine.", ["Okafor"], []),
    ("Mrs. Patterson was my favourite teacher.", ["Patterson"], []),
    # greetings and signatures
    ("Thanks, Rebecca", ["Rebecca"], []),
    ("Thanks for the help!\nCheers,\nTom", ["Tom"], []),
    ("Hey Jake, are you coming?", ["Jake"], []),
    ("Sincerely,\nMargaret O'Brien", ["Margaret O'Brien"], []),
    ("Thanks, Will", ["Will"], []),
    # names from the list alone
    ("I went hiking with Carlos and Ana yesterday.", ["Carlos", "Ana"], []),
    ("i told jessica about the party", ["jessica"], []),
    ("Emma and I are going to Paris.", ["Emma"], ["Paris"]),
    ("Muhammad helped me move.", ["Muhammad"], []),
    ("Chloe said she'd call Ethan later.", ["Chloe", "Ethan"], []),
    ("I met José García in Madrid.", ["José García"], ["Madrid"]),
    ("Bill Johnson from next door fixed our fence.", ["Bill Johnson"], []),
    ("I had lunch with Mark today.", ["Mark"], []),
    ("Charlotte Evans is my neighbour.", ["Charlotte Evans"], []),
    ("Do you know Hiroshi Tanaka?", ["Hiroshi Tanaka"], []),
    ("My brother-in-law Pedro lives in Texas.", ["Pedro"], ["Texas"]),
    ("ok so kwame and i went to the mall", ["kwame"], []),
    ("Tell Fatima I said hello!", ["Fatima"], []),
    ("Ça va? Je m'appelle Amélie Dubois, j'habite à Lyon.", ["Amélie Dubois"], []),
    # e-mail addresses
    ("Email me at john.doe+news@gmail.com please.", ["john.doe+news@gmail.com"], []),
    ("my work address is p.nguyen@acme-corp.co.uk", ["p.nguyen@acme-corp.co.uk"], []),
    ("Contact: SUPPORT_TEAM@Example.ORG", ["SUPPORT_TEAM@Example.ORG"], []),
    # phone numbers
    ("Call me at (555) 123-4567 tonight.", ["(555) 123-4567"], []),
    ("My cell is 555-987-6543.", ["555-987-6543"], []),
    ("text me on 555.222.3333", ["555.222.3333"], []),
    ("Our London office: +44 20 7946 0958.", ["+44 20 7946 0958"], ["London"]),
    ("Reach me on +1 (415) 555-0132 any time.", ["+1 (415) 555-0132"], []),
    ("Mein Handy: +49 151 23456789", ["+49 151 23456789"], []),
    ("ring me on 07700 900123", ["07700 900123"], []),
    ("my number is 5551234567", ["5551234567"], []),
    ("Il mio numero è +39 06 1234 5678", ["+39 06 1234 5678"], []),
    ("call 1-800-555-0199 for support", ["1-800-555-0199"], []),
    # social security numbers
    ("My SSN is 123-45-6789.", ["123-45-6789"], []),
    ("social security number 078 05 1120", ["078 05 1120"], []),
    ("ssn: 219099999", ["219099999"], []),
    # card numbers
    ("Card: 4111 1111 1111 1111, exp 12/26", ["4111 1111 1111 1111"], []),
    ("use 5500-0000-0000-0004 for the payment", ["5500-0000-0000-0004"], []),
    ("my amex is 3782 822463 10005", ["3782 822463 10005"], []),
    ("card number 4012888888881881", ["4012888888881881"], []),
    ("Pay with 6011111111111117 please", ["6011111111111117"], []),
    # IP addresses
    ("My IP is 192.168.1.20, can you see it?", ["192.168.1.20"], []),
    ("server at 10.0.0.254 keeps crashing", ["10.0.0.254"], []),
    ("ipv6: 2001:db8::8a2e:370:7334", ["2001:db8::8a2e:370:7334"], []),
    ("connect to fe80::1ff:fe23:4567:890a on the LAN", ["fe80::1ff:fe23:4567:890a"], []),
    ("8.8.8.8 is Google's DNS", ["8.8.8.8"], ["Google"]),
    # street addresses
    ("I live at 42 Maple Street.", ["42 Maple Street"], []),
    ("Send it to 1600 Amphitheatre Parkway, Mountain View.", ["1600 Amphitheatre Parkway"], []),
    ("we moved to 17 Oak Ave last spring", ["17 Oak Ave"], []),
    ("Meet me at 350 5th Avenue at noon.", ["350 5th Avenue"], []),
    ("my address is 221 W. Elm Rd, Apt 4B", ["221 W. Elm Rd"], []),
    ("i live at 9 willow lane in leeds", ["9 willow lane"], []),
    ("The party is at 1234 Sunset Blvd.", ["1234 Sunset Blvd"], []),
    ("Post it to 14 Baker Close, Leeds.", ["14 Baker Close"], []),
    # several kinds at once, multi-line, non-ASCII around the spans
    (
        "Hi, I'm Lucas. Email lucas.m@mail.com or call 555-321-7654.",
        ["Lucas", "lucas.m@mail.com", "555-321-7654"],
        [],
    ),
    (
        "Name: Ingrid Svensson\nPhone: +46 70 123 45 67\nAddress: 5 Kings Road",
        ["Ingrid Svensson", "+46 70 123 45 67", "5 Kings Road"],
        [],
    ),
    ("我的朋友 David 住在 10.1.2.3", ["David", "10.1.2.3"], []),
    # a second batch, written before the code was tuned on it
    ("hey its nina here, whats up", ["nina"], []),
    ("My girlfriend Tamsin thinks I'm crazy", ["Tamsin"], []),
    ("So yesterday Brandon and Keisha came over for dinner", ["Brandon", "Keisha"], []),
    ("I'm Oluwaseun btw", ["Oluwaseun"], []),
    ("my name is Dmitri Volkov", ["Dmitri Volkov"], []),
    ("our neighbor mr. henderson complains a lot", ["henderson"], []),
    ("Talked to my cousin Benedikt about the trip", ["Benedikt"], []),
    ("Regards,\nPaul Whitfield", ["Paul Whitfield"], []),
    ("- Marisol", ["Marisol"], []),
    ("Do you think Megan will like it?", ["Megan"], []),
    ("Ask Trevor, he knows everything about cars", ["Trevor"], []),
    ("I used to date a guy named Rory", ["Rory"], []),
    ("my daughter, Imani, is turning 3", ["Imani"], []),
    ("Hi Gwen! long time no see", ["Gwen"], []),
    ("lol yeah matt said the same thing", ["matt"], []),
    ("Sophie Turner from my class is so annoying", ["Sophie Turner"], []),
    ("Anyway, Hamid and his wife Leila are visiting", ["Hamid", "Leila"], []),
    ("Mein Name ist Jürgen Becker", ["Jürgen Becker"], []),
    ("my email is kwame.mensah1990@yahoo.com", ["kwame.mensah1990@yahoo.com"], []),
    ("write to info-desk@my-company.io", ["info-desk@my-company.io"], []),
    ("my cell is (312) 555-0198", ["(312) 555-0198"], []),
    ("call 020 7123 4567 after 6", ["020 7123 4567"], []),
    ("whatsapp +91 98765 43210", ["+91 98765 43210"], []),
    ("my number's 415-555-2671 text me", ["415-555-2671"], []),
    ("+33 6 12 34 56 78 is my french number", ["+33 6 12 34 56 78"], []),
    ("the ssn on file is 512-34-8890", ["512-34-8890"], []),
    ("visa 4532 7153 3790 4422 expires soon", ["4532 7153 3790 4422"], []),
    ("use card 5425233430109903", ["5425233430109903"], []),
    ("the router is at 192.168.0.1", ["192.168.0.1"], []),
    ("my public ip is 73.162.44.201 apparently", ["73.162.44.201"], []),
    ("ping 2607:f8b0:4005:80a::200e", ["2607:f8b0:4005:80a::200e"], []),
    ("We live at 1189 Pinecrest Drive", ["1189 Pinecrest Drive"], []),
    ("deliver it to 77 Harbour View Rd please", ["77 Harbour View Rd"], []),
    ("my address is 5 gloucester place, london", ["5 gloucester place"], []),
    ("Grew up on 3400 N Lake Shore Dr in Chicago", ["3400 N Lake Shore Dr"], ["Chicago"]),
    ("I'm Carmen, I live at 12 Elm Court, my phone is 555-404-1212", ["Carmen", "12 Elm Court", "555-404-1212"], []),
    ("Tell Aunt Deborah I said hi", ["Deborah"], []),
    ("me and jake went fishing", ["jake"], []),
    ("Mom, this is Ahmed, my lab partner", ["Ahmed"], []),
    ("Congrats Siobhan!!", ["Siobhan"], []),
    # names in capitals, in lower case after another name, after a sign-off or a kinship title
    ("tell JESSICA i'm on my way", ["JESSICA"], []),
    ("ANDREW and i are coming", ["ANDREW"], []),
    ("Name: ABIGAIL OKONJO\nPhone: 555-010-2233", ["ABIGAIL OKONJO", "555-010-2233"], []),
    ("i'm Natalia Petrovna", ["Natalia Petrovna"], []),
    ("Yours,\nWilhelmina Frost", ["Wilhelmina Frost"], []),
    ("me and sophia and wilson went to the fair", ["sophia", "wilson"], []),
    ("Tell Auntie Marguerite the cake was lovely", ["Marguerite"], []),
    ("Emma and Paris are both on my list.", ["Emma"], ["Paris"]),  # an entity after "and" stays
    # dates of birth, in any form, after (or before) a cue
    ("I was born on 02/28/1979 in Ohio", ["02/28/1979"], ["Ohio"]),
    ("DOB - 11.12.1965", ["11.12.1965"], []),
    ("my date of birth is the 1st of May, 1988", ["1st of May, 1988"], []),
    ("birthday: Sept 9, 1999", ["Sept 9, 1999"], []),
    ("Born 1993/07/21 in Seoul", ["1993/07/21"], ["Seoul"]),
    ("née le 3 mars 1990 à Lyon", ["3 mars 1990"], []),
    ("12 December 1980 is my birthday", ["12 December 1980"], []),
    # UK postcodes and US ZIP codes
    ("my postcode's SW19 5AE", ["SW19 5AE"], []),
    ("send it to CB2 1TN please", ["CB2 1TN"], []),
    ("we're in ec1v 9hx", ["ec1v 9hx"], []),
    ("zip code 94110", ["94110"], []),
    ("Denver, CO 80202", ["80202"], []),
    ("Boston, Massachusetts 02115", ["02115"], []),
    ("mail it to 123 Main St, Anytown, NY 12345-6789", ["123 Main St", "12345-6789"], []),
    # IBANs, passport and plate numbers
    ("IBAN GB39 NWBK 6071 1834 8277 19", ["GB39 NWBK 6071 1834 8277 19"], []),
    ("my iban is de44 5001 0517 5407 3249 31", ["de44 5001 0517 5407 3249 31"], []),
    ("Pay to NL05INGB0007391524 today", ["NL05INGB0007391524"], []),
    ("passport no. 912803746", ["912803746"], []),
    ("My Reisepass number is C01X00T47", ["C01X00T47"], []),
    ("her car reg is SK70 AWN", ["SK70 AWN"], []),
    ("a van, KM66 TRD, blocked the drive", ["KM66 TRD"], []),
    ("license plate: 6XYZ 123", ["6XYZ 123"], []),
    # handles and usernames in profile URLs
    ("follow @the_real_jen", ["the_real_jen"], []),
    ("hmu on insta: jen.draws_22", ["jen.draws_22"], []),
    ("my gamertag is xXSniperWolfXx99", ["xXSniperWolfXx99"], []),
    ("linkedin.com/in/anna-kowalska", ["anna-kowalska"], []),
    ("https://github.com/okwudili-dev/dotfiles", ["okwudili-dev"], []),
    ("https://www.facebook.com/maria.gonzalez.5439", ["maria.gonzalez.5439"], []),
    ("t.me/vladimir_k", ["vladimir_k"], []),
    # addresses: Gardens, Heights, rue, PO Box, a flat before the number, German order
    ("I live at 22 Acacia Gardens, Bristol", ["22 Acacia Gardens"], []),
    ("send it to 4 Regent Heights", ["4 Regent Heights"], []),
    ("PO Box 1234, Nairobi", ["PO Box 1234"], []),
    ("j'habite 8 avenue de la République", ["8 avenue de la République"], []),
    ("my address is 15 boulevard Saint-Germain", ["15 boulevard Saint-Germain"], []),
    ("wohne in der Lindenstraße 14", ["Lindenstraße 14"], []),
    ("Flat 2, 19 Orchard Rise", ["Flat 2, 19 Orchard Rise"], []),
    # SSNs after a cue, with other words between
    ("my SSN (from the W-2) is 123 45 6789", ["123 45 6789"], []),
    ("my social is 078051120", ["078051120"], []),
]

# Ordinary chat lines: they must come back unchanged. Entities in them are listed for the entity check.
CLEAN_CASES = [
    ("Will you help me with my homework?", []),
    ("May is my favourite month.", []),
    ("I have 3 cats and 2 dogs.", []),
    ("The concert was in 2019 and tickets cost $45.50.", []),
    ("Let's meet at 10:30 tomorrow.", []),
    ("Mark my words, it will rain.", []),
    ("Grace under pressure is a rare skill.", []),
    ("Bill me later, please.", []),
    ("Hope you are doing well!", []),
    ("Jack of all trades, master of none.", []),
    ("Rose petals covered the floor.", []),
    ("Please mark the date: 2024-05-17.", []),
    ("I love Taylor Swift's new album.", ["Taylor Swift"]),
    ("Barack Obama was president from 2009 to 2017.", ["Barack Obama"]),
    ("Elon Musk bought Twitter for $44 billion.", ["Elon Musk", "Twitter"]),
    ("Albert Einstein developed relativity.", ["Albert Einstein"]),
    ("Shakespeare wrote Hamlet around 1600.", ["Shakespeare", "Hamlet"]),
    ("I visited Jordan and Egypt last year.", ["Jordan", "Egypt"]),
    ("We spent a week in New York and Paris.", ["New York", "Paris"]),
    ("It's 72 degrees and sunny in Austin.", ["Austin"]),
    ("Is it true that Michael Jordan played baseball?", ["Michael Jordan"]),
    ("Can you recommend a book by Jane Austen?", ["Jane Austen"]),
    ("Apple and Microsoft reported earnings on Tuesday.", ["Apple", "Microsoft"]),
    ("Frank Sinatra sang it best.", ["Frank Sinatra"]),
    ("I watched Good Will Hunting again.", ["Good Will Hunting"]),
    ("Amazing Grace is my grandmother's favourite hymn.", ["Amazing Grace"]),
    ("Harry Potter and the Philosopher's Stone is great.", ["Harry Potter"]),
    ("My favourite number is 7 and I am 25 years old.", []),
    ("The score was 3-2 after 90 minutes.", []),
    ("I ran 5.5 miles in 45 minutes.", []),
    ("He said it will cost about 1,500 dollars.", []),
    ("Version 3.2.1 fixed the bug.", []),
    ("Room 101 is on the 3rd floor.", []),
    ("I drove 3 miles down the road to the store.", []),
    ("I'm Christian and I go to church on Sundays.", []),
    ("Christmas is on December 25.", []),
    ("Call me tomorrow after 5pm.", []),
    ("I'm happy to help!", []),
    ("Dear Sir or Madam,", []),
    ("The meeting is in Room 4 at 3:15 pm on Jan 5th.", []),
    ("The ISBN is 978-0-13-110362-7.", []),
    ("Order #123456 shipped on 05/17/2023.", []),
    ("I'm a Leo and my sister is a Virgo.", []),
    ("About 8,000,000,000 people live on Earth.", []),
    ("The Prime Minister lives at 10 Downing Street.", ["10 Downing Street"]),
    ("Summer is my favourite season, then Autumn.", []),
    ("We drove through Lincoln Park to the Hudson River.", ["Lincoln", "Hudson River"]),
    ("I bought a Mercedes last year.", ["Mercedes"]),
    ("I'd love to visit San Diego and St. Louis.", ["San Diego", "St. Louis"]),
    ("Hello World! Best regards, Team", []),
    ("Do you miss Korea?", []),
    # a second batch, written before the code was tuned on it
    ("will you be around tomorrow?", []),
    ("I'll mark it on the calendar.", []),
    ("May I ask a question?", []),
    ("Grace is such a beautiful word.", []),
    ("Frankly, I don't care.", []),
    ("Hope it goes well.", []),
    ("Bill the client for 3 hours.", []),
    ("I scored 98 out of 100 on the test.", []),
    ("My flight leaves at 6:45 am from gate 12.", []),
    ("It was 2 for $5 at the store.", []),
    ("Taylor Swift and Beyonce are touring.", ["Taylor Swift", "Beyonce"]),
    ("I read a book about Abraham Lincoln.", ["Abraham Lincoln"]),
    ("Have you been to Sydney or Melbourne?", ["Sydney", "Melbourne"]),
    ("Jordan is a beautiful country.", ["Jordan"]),
    ("I just got a new iPhone from Apple.", ["Apple"]),
    ("We watched Star Wars last night.", ["Star Wars"]),
    ("My zip code starts with 9.", []),
    ("I was born in 1987.", []),
    ("The temperature is 21.5 degrees.", []),
    ("Chapter 11 is my favourite.", []),
    ("Is Summer better than Winter?", []),
    ("Joy to the world!", []),
    ("Let me know if you need anything, thanks!", []),
    ("I love the color violet.", []),
    ("The Christian holidays are in December.", []),
    # traps for the detectors of dates of birth, postcodes, ZIP codes, IBANs, passports, plates, handles
    ("We moved to Leeds in May 2021.", ["Leeds"]),
    ("The project started on 2021-03-01 and ended 2022-01-31.", []),
    ("Version 2.10.3 came out on 10/03/2023.", []),
    ("He was born in May 1990 in Ohio.", ["Ohio"]),
    ("My birthday is next Friday!", []),
    ("Mozart was born on 27 January 1756.", ["Mozart"]),
    ("The plate was delicious, 10/10.", []),
    ("My car reg is due for renewal next month.", []),
    ("My passport expires in 2026.", []),
    ("Passport photos cost 15 pounds.", []),
    ("My zip file is 20 MB.", []),
    ("The BMW X5 is a big car.", ["BMW"]),
    ("My PS4 2nd controller broke.", []),
    ("b4 5pm please", []),
    ("Order 10000-2000 units by Friday.", []),
    ("Use @staticmethod for helpers and @dataclass for records.", []),
    ("Meet me @ 5pm, or @7 at the latest.", []),
    ("Ping @everyone in the channel.", []),
    ("My instagram has 10.5k followers now.", []),
    ("I spend 2hrs on tiktok every day.", []),
    ("My twitter is down again.", []),
    ("See twitter.com/search?q=cats or instagram.com/explore for ideas.", []),
    ("PyTorch is on github.com/pytorch/pytorch.", ["PyTorch"]),
    ("Social media is exhausting.", []),
    ("The SSN field is mandatory.", []),
    ("Dear Hiring Manager, please find my CV attached.", []),
    ("Best regards,\nThe Support Team", []),
    ("This is Spinal Tap.", []),
    ("I'm Very Tired today.", []),
    ("Me and Dad went fishing.", []),
    ("LOL MY CAT JUST FELL OFF THE BED", []),
    ("I'm JUST SO DONE with this, ASAP please", []),
    ("We watched Wuthering Heights at Covent Garden.", []),
    ("Check the DE10 model and the M25 and A1 roads.", []),
    ("I need 3 Avenue Q tickets.", []),
    ("ig its 2am already, ig 2nd place was better", []),
    ("my birthday is in march 2 weeks from now", []),
]


def _gone(item: str, scrubbed: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(item)}(?!\w)", scrubbed) is None


def measure(scrubber: Scrubber) -> tuple[float, int]:
    """(recall over the PII items of PII_CASES, number of CLEAN_CASES lines that changed)."""
    items = [(item, scrubber.scrub(text)) for text, pii, _ in PII_CASES for item in pii]
    recall = sum(_gone(item, out) for item, out in items) / len(items)
    false_positives = sum(scrubber.scrub(text) != text for text, _ in CLEAN_CASES)
    return recall, false_positives


def test_table_is_large_enough():
    assert len(PII_CASES) >= 60
    assert len(CLEAN_CASES) >= 20
    assert {kind for text, _, _ in PII_CASES for kind in (s.kind for s in Scrubber(SALT).find(text))} == set(PII_KINDS)


def test_recall_and_false_positives():
    recall, false_positives = measure(Scrubber(SALT))
    assert recall >= 0.95
    assert false_positives <= 1


def test_no_false_positive_line_by_line():
    scrubber = Scrubber(SALT)
    changed = [text for text, _ in CLEAN_CASES if scrubber.scrub(text) != text]
    assert changed == []


@pytest.mark.parametrize("text,pii,entities", PII_CASES)
def test_pii_cases(text, pii, entities):
    out = Scrubber(SALT).scrub(text)
    assert [item for item in pii if not _gone(item, out)] == []
    assert [e for e in entities if e not in out] == []


def test_well_known_entities_are_kept():
    scrubber = Scrubber(SALT)
    cases = [(text, entities) for text, _, entities in PII_CASES] + CLEAN_CASES
    removed = [(e, text) for text, entities in cases for e in entities if e not in scrubber.scrub(text)]
    assert removed == []


def test_place_that_is_a_given_name_is_kept_without_a_cue():
    scrubber = Scrubber(SALT)
    assert scrubber.scrub("I flew to Jordan in May.") == "I flew to Jordan in May."
    assert "Jordan" not in scrubber.scrub("my friend Jordan flew to Paris")


def test_find_returns_sorted_non_overlapping_spans():
    text = "I'm Lucas, lucas@mail.com, 555-321-7654, 42 Maple Street, 10.0.0.1, 4111 1111 1111 1111, 123-45-6789"
    spans = Scrubber(SALT).find(text)
    assert [s.kind for s in spans] == ["name", "email", "phone", "address", "ip", "card", "ssn"]
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:]))
    assert all(isinstance(s, PIISpan) and s.kind in PII_KINDS for s in spans)
    assert text[spans[1].start : spans[1].end] == "lucas@mail.com"


def test_same_salt_same_output():
    text = "My name is Sarah Johnson, call 555-123-4567 or mail sarah@example.com."
    assert Scrubber(SALT).scrub(text) == Scrubber(SALT).scrub(text)


def test_same_name_same_token_within_a_release():
    out = Scrubber(SALT).scrub("My friend Sarah called. Later sarah texted me.")
    tokens = TOKEN.findall(out)
    assert len(tokens) == 2 and tokens[0] == tokens[1]


def test_different_salts_give_different_tokens_and_digits():
    text = "My name is Sarah Johnson and my SSN is 123-45-6789."
    a, b = Scrubber(b"salt one").scrub(text), Scrubber(b"salt two").scrub(text)
    assert TOKEN.findall(a) != TOKEN.findall(b)
    assert re.findall(r"\d{3}-\d{2}-\d{4}", a) != re.findall(r"\d{3}-\d{2}-\d{4}", b)


def test_default_salt_is_random_and_hidden():
    text = "my name is Sarah"
    assert Scrubber().scrub(text) != Scrubber().scrub(text)
    salt = b"do not show me"
    assert "do not show me" not in repr(Scrubber(salt))


@pytest.mark.parametrize(
    "number",
    [
        "(555) 123-4567",
        "555.222.3333",
        "+44 20 7946 0958",
        "4111 1111 1111 1111",
        "5500-0000-0000-0004",
        "123-45-6789",
        "4012888888881881",
        "1-800-555-0199",
    ],
)
def test_digits_randomised_format_kept(number):
    out = Scrubber(SALT).scrub(f"here: {number} ok")
    assert out.startswith("here: ") and out.endswith(" ok")
    fake = out[len("here: ") : -len(" ok")]
    assert fake != number
    assert len(fake) == len(number)
    assert re.sub(r"\d", "9", fake) == re.sub(r"\d", "9", number)  # same separators in the same places


def test_single_digit_street_number_still_changes():
    scrubber = Scrubber(SALT)
    for n in range(1, 10):
        out = scrubber.scrub(f"I live at {n} Oak Street.")
        assert re.fullmatch(r"I live at [1-9] \[PII:[0-9a-f]{10}\] Street\.", out)
        assert out != f"I live at {n} Oak Street."


def test_address_keeps_suffix_and_unit_shape():
    out = Scrubber(SALT).scrub("my address is 221 W. Elm Rd, Apt 4B")
    assert re.fullmatch(r"my address is \d{3} \[PII:[0-9a-f]{10}\] Rd, Apt \dB", out)
    assert "Elm" not in out


def test_token_does_not_contain_the_original():
    scrubber = Scrubber(SALT)
    for text, original in [("my name is Ada", "ada"), ("mail ed@x.io", "ed@x.io"), ("ip 1.2.3.4", "1.2.3.4")]:
        out = scrubber.scrub(text)
        (token,) = TOKEN.findall(out)
        assert original not in token.lower()
        assert original not in out.lower()


def test_non_ascii_and_multiline_text_around_spans_is_preserved():
    text = (
        "Größe: 42 ✓\nMy friend Sarah — née Müller — lives at 7 Rue Street.\n\n"
        "¿Dónde está? 555-123-4567 😀\n"
    )
    scrubber = Scrubber(SALT)
    spans = scrubber.find(text)
    assert [text[s.start : s.end] for s in spans] == ["Sarah", "7 Rue Street", "555-123-4567"]
    expected = (
        re.escape(text[: spans[0].start])
        + TOKEN.pattern
        + re.escape(text[spans[0].end : spans[1].start])
        + r"[1-9] " + TOKEN.pattern + " Street"
        + re.escape(text[spans[1].end : spans[2].start])
        + r"\d{3}-\d{3}-\d{4}"
        + re.escape(text[spans[2].end :])
    )
    assert re.fullmatch(expected, scrubber.scrub(text))


def test_empty_and_plain_text():
    scrubber = Scrubber(SALT)
    assert scrubber.find("") == []
    assert scrubber.scrub("") == ""
    assert scrubber.scrub("just some words\n") == "just some words\n"


# ---------------------------------------------------------------------------------------------
# The planted set and the clean set (tests/fixtures), measured as bench/pii.py measures them.

ROOT = Path(__file__).resolve().parents[2]
PLANTED_SHA256 = "96700f54c1af716c0bdcc231674ed275670c7fc5fd0419ff2547aaba9522d641"
CLEAN_SHA256 = "0336b7385dd2d3fa3716ca9270bf8d5479b706dc892ea2b648020fe5725abfdc"
ISSUE_KINDS = {"name", "email", "phone", "address", "ssn", "card", "ip", "dob", "postcode", "zip", "iban",
               "passport", "plate", "handle", "url_user"}


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_pii", ROOT / "bench" / "pii.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def measured(bench):
    return bench.measure()


def test_planted_and_clean_sets_are_the_ones_measured_before_tuning(bench):
    # Written before the new detectors and never edited since: a change here would make the recall figure
    # a figure on data fitted to the code. Add new examples to the tables above instead.
    assert hashlib.sha256(bench.PLANTED.read_bytes()).hexdigest() == PLANTED_SHA256
    assert hashlib.sha256(bench.CLEAN.read_bytes()).hexdigest() == CLEAN_SHA256
    planted, clean = bench.load(bench.PLANTED), bench.load(bench.CLEAN)
    bench.check_planted(planted)
    assert sum(len(item["spans"]) for item in planted) >= 120
    assert {span["kind"] for item in planted for span in item["spans"]} == ISSUE_KINDS
    assert len(clean) >= 150


def test_planted_recall_is_at_least_098(measured):
    assert measured["recall"] >= 0.98, [(kind, text) for kind, text, _ in measured["misses"]]


def test_planted_recall_per_kind(measured):
    # every kind the issue named is caught at least 9 times in 10 (one miss of 9-20 spans at most)
    low = {kind: counts for kind, counts in measured["by_kind"].items() if counts[0] < 0.9 * counts[1]}
    assert low == {}


def test_clean_set_false_positives_stay_below_one_percent(measured):
    # Bound: at most 1% of the clean sentences changed (1 of 172); at the time of writing none is.
    assert len(measured["clean_changed"]) <= measured["clean_lines"] // 100, measured["clean_changed"]


def test_caught_means_nothing_identifying_survives(bench):
    scrub = lambda *outs: list(outs)  # noqa: E731
    assert bench.caught("14 Primrose Gardens", scrub("at 41 [PII:0123456789] Gardens"))
    assert not bench.caught("14 Primrose Gardens", scrub("at 41 Primrose Gardens"))
    assert not bench.caught("14 Primrose Gardens", scrub("at 14 [PII:0123456789] Gardens"))
    assert not bench.caught("+61 412 345 678", scrub("+61412345678"))  # separators changed, digits kept
    # a redrawn group that comes out the same under one salt is chance; under all three it is a leak
    assert bench.caught("+61 412 345 678", scrub("+82 412 907 113", "+13 288 345 901", "+44 512 766 210"))
    assert not bench.caught("+61 412 345 678", scrub("+82 412 907 113", "+13 412 345 901", "+44 412 766 210"))


# ---------------------------------------------------------------------------------------------
# The new kinds: what each replacement keeps, and what the validation lets through.


def _only_span(text):
    (span,) = Scrubber(SALT).find(text)
    return span.kind, text[span.start : span.end]


@pytest.mark.parametrize(
    "text,kind,found",
    [
        ("born on 14/07/1989", "dob", "14/07/1989"),
        ("my birthday is 3rd of March 1995", "dob", "3rd of March 1995"),
        ("postcode SE15 4QT", "postcode", "SE15 4QT"),
        ("Austin, TX 78704", "zip", "78704"),
        ("IBAN GB39 NWBK 6071 1834 8277 19.", "iban", "GB39 NWBK 6071 1834 8277 19"),
        ("passport number is 502913746", "passport", "502913746"),
        ("reg LD68 VFP", "plate", "LD68 VFP"),
        ("tag me @jules_b!", "handle", "jules_b"),
        ("https://www.instagram.com/jenna.paints/", "handle", "jenna.paints"),
        ("youtube.com/@grillmasterdan", "handle", "grillmasterdan"),
        ("PO Box 4471", "address", "PO Box 4471"),
        ("12 rue des Lilas", "address", "12 rue des Lilas"),
    ],
)
def test_new_kinds_are_found_with_their_extent(text, kind, found):
    assert _only_span(text) == (kind, found)


def test_new_kinds_keep_their_shape():
    scrubber = Scrubber(SALT)
    iban = "GB39 NWBK 6071 1834 8277 19"
    out = scrubber.scrub(f"IBAN {iban}")[len("IBAN ") :]
    assert out != iban and out.startswith("GB") and len(out) == len(iban)
    assert re.sub(r"[A-Z]", "A", re.sub(r"\d", "9", out)) == re.sub(r"[A-Z]", "A", re.sub(r"\d", "9", iban))
    assert re.fullmatch(r"my postcode is [a-z]{2}\d [1-9][a-z]{2}", scrubber.scrub("my postcode is bs8 1tx"))
    zip_code = scrubber.scrub("Austin, TX 78704")
    assert re.fullmatch(r"Austin, TX \d{5}", zip_code) and zip_code != "Austin, TX 78704"
    assert re.fullmatch(rf"born on {TOKEN.pattern}", scrubber.scrub("born on 14/07/1989"))
    assert re.fullmatch(rf"tag me @{TOKEN.pattern}!", scrubber.scrub("tag me @jules_b!"))
    assert re.fullmatch(r"send it to PO Box [1-9]\d{3}, Wellington", scrubber.scrub("send it to PO Box 4471, Wellington"))
    assert re.fullmatch(rf"au [1-9]\d rue des {TOKEN.pattern}, à Nantes", scrubber.scrub("au 12 rue des Lilas, à Nantes"))
    assert re.fullmatch(rf"[1-9] {TOKEN.pattern} Heights", scrubber.scrub("3 Kensington Heights"))
    assert re.fullmatch(rf"Flat [1-9], [1-9]\d {TOKEN.pattern} Gardens", scrubber.scrub("Flat 5, 88 Rosebery Gardens"))
    plate = scrubber.scrub("reg LD68 VFP")
    assert re.fullmatch(r"reg [A-Z]{2}\d\d [A-Z]{3}", plate) and plate != "reg LD68 VFP"


def test_same_code_same_replacement_within_a_release():
    out = Scrubber(SALT).scrub("my postcode is SE15 4QT, yes SE15 4QT")
    assert "SE15 4QT" not in out and out.count(out[len("my postcode is ") : len("my postcode is SE15 4QT")]) == 2


@pytest.mark.parametrize(
    "text",
    [
        "ref GB12 NWBK 6071 1834 8277 19 on the invoice",  # IBAN-shaped, check digits wrong, no cue: not one
        "delivered in May 2021, paid on 12/05/2021",  # dates, nobody's birthday
        "Einstein was born on 14 March 1879.",  # too long ago to be anyone alive
        "my PS4 2nd controller",  # "S4 2nd" is an ordinal, not a postcode
        "the room was 12345 sq ft",  # five digits with no ZIP cue
        "my passport photo is ready",
        "use @property and @Override",
        "my twitter is down",
    ],
)
def test_validation_keeps_ordinary_text(text):
    assert Scrubber(SALT).scrub(text) == text


def test_iban_with_a_typo_is_still_scrubbed_after_a_cue():
    out = Scrubber(SALT).scrub("wait sorry the iban is DE12 5001 0517 5407 3249 31")
    assert "5407 3249" not in out and out.startswith("wait sorry the iban is DE")


def test_iban_beats_the_card_number_inside_it():
    text = "the rent goes to ES98 2038 5778 9830 0076 0236 every month"
    found = [(s.kind, text[s.start : s.end]) for s in Scrubber(SALT).find(text)]
    assert found == [("iban", "ES98 2038 5778 9830 0076 0236")]
