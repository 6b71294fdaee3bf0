"""PII scrubbing for training examples: documented patterns, replaced by a placeholder, counted.

Patterns, in the order they are applied (earlier ones win, so a card number is never
half-eaten by the phone pattern):

=========  ===============================================================  =============
kind       pattern                                                          placeholder
=========  ===============================================================  =============
email      ``local@domain.tld`` (RFC 5322 "common" subset)                  ``[EMAIL]``
card       13-19 digits, optionally grouped by spaces or dashes, that pass  ``[CARD]``
           the Luhn checksum (so order numbers and dates are left alone)
id         Spanish DNI ``12345678Z`` / NIE ``X1234567L``; Latin American     ``[ID]``
           cédula with a letter prefix ``V-12345678``, ``E-8123456``;
           US SSN ``123-45-6789``
phone      ``+`` and 8-15 digits; 7-15 digits in groups separated by         ``[PHONE]``
           spaces, dots, dashes or parentheses; or 10-15 bare digits.
           ISO dates (``2024-01-14``) and thousands-grouped amounts
           (``1.500.000``) are not phones
=========  ===============================================================  =============

This is pattern matching, not understanding: a bare 8-digit national id without its
letter is indistinguishable from an amount and is left alone. The report says how many
of each were replaced so a reviewer can judge.
"""

from __future__ import annotations

import re
from collections import Counter

EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}\b")
CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
ID = re.compile(
    r"\b(?:\d{8}[A-HJ-NP-TV-Z]|[XYZ]\d{7}[A-HJ-NP-TV-Z]|[VEJPG]-?\d{6,9}|\d{3}-\d{2}-\d{4})\b"
)
PHONE = re.compile(r"(?<![\w+])(?:\+\d[\d .\-()]{7,20}\d|\(?\d{2,4}\)?(?:[ .\-]?\d{2,4}){2,5})(?![\w])")

NOT_PHONE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,3}(?:[.,]\d{3})+")

PLACEHOLDERS = {"email": "[EMAIL]", "card": "[CARD]", "id": "[ID]", "phone": "[PHONE]"}


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def scrub(text: str, counts: Counter[str] | None = None) -> str:
    """Return ``text`` with PII replaced; add what was replaced to ``counts``."""
    counts = counts if counts is not None else Counter()

    def email(m: re.Match[str]) -> str:
        counts["email"] += 1
        return PLACEHOLDERS["email"]

    def card(m: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            counts["card"] += 1
            return PLACEHOLDERS["card"]
        return m.group()

    def ident(m: re.Match[str]) -> str:
        counts["id"] += 1
        return PLACEHOLDERS["id"]

    def phone(m: re.Match[str]) -> str:
        raw = m.group()
        digits = re.sub(r"\D", "", raw)
        if NOT_PHONE.fullmatch(raw) or not 7 <= len(digits) <= 15:
            return raw
        if raw == digits and len(digits) < 10:
            return raw  # a bare short number is more likely an amount or a reference
        counts["phone"] += 1
        return PLACEHOLDERS["phone"]

    text = EMAIL.sub(email, text)
    text = CARD.sub(card, text)
    text = ID.sub(ident, text)
    return PHONE.sub(phone, text)


def scrub_messages(messages: list[dict[str, str]], counts: Counter[str]) -> list[dict[str, str]]:
    return [{**m, "content": scrub(m["content"], counts)} for m in messages]
