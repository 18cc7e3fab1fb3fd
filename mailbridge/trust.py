"""Judge the sender from ``Authentication-Results`` (RFC 8601): DKIM, SPF, DMARC.

Billbox does not verify signatures itself: the receiving MTA (Postfix with
OpenDKIM/OpenDMARC, Exchange Online, Gmail when polling over IMAP) already
did, and wrote what it found into an ``Authentication-Results`` header on
top of the message. This module reads those headers and judges the From
address as ``pass``, ``fail`` or ``unknown``. Pure functions, no database.

Which headers are believed. Anyone can write an ``Authentication-Results``
header into the mail they send, so a header is evidence only when a server
we run (or chose, like the mailbox provider we poll) wrote it:

- with ``TrustContext.trusted_authserv_ids`` set, every header whose
  authserv-id is in the set is read, topmost first (Postfix with OpenDKIM,
  OpenDMARC and policyd-spf adds one header per milter, all with the same
  id). This relies on RFC 8601 section 5: the MTA must delete incoming
  headers that claim its own authserv-id (OpenDKIM and OpenDMARC do). A
  header without an authserv-id (Exchange Online writes none) never
  matches the set;
- with an empty set, only the *topmost* header is read, whatever its id.
  Each server adds its header above the ones already there, so the topmost
  was written by the last server to handle the message — our own MX, or
  the provider we poll. Every header below it was already in the message
  when it arrived there and may have been written by the sender: reading
  one would let a forger who adds ``dmarc=pass`` pass. For the same reason
  an unreadable topmost header makes the result ``unknown``; the next one
  down is not a fallback.

The verdict is a Mailman-style chain (``classify.py`` explains the pattern):
:data:`CHAIN` is the one table of (rule, verdict); every rule runs, every
hit is recorded, and the first hit with a verdict decides; rules with
``None`` only record what an operator should know. Order is the policy:

1. the MTA's DMARC result about this From domain, pass or fail, decides
   first: it already combines SPF and DKIM with alignment and the domain
   owner's policy;
2. without one, a passing DKIM signature *aligned* with the From domain is
   a pass. Alignment here is the From domain itself or a parent of it
   (``d=example.com`` for ``billing.example.com``). DMARC's relaxed mode
   also accepts a signing *subdomain* of the From domain, but telling
   ``example.com`` from ``github.io`` needs the Public Suffix List, which we
   do not ship; without it, ``d=attacker.github.io`` would align with
   ``From: x@github.io``. So a subdomain signature is not a pass here;
3. SPF ``fail`` (not ``softfail``, which the domain owner publishes as
   "probably not") with no passing DKIM signature at all is a fail;
4. anything else — no trusted header, SPF pass alone (it says nothing about
   the From address), softfail, neutral, temporary errors — is ``unknown``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import Message
from enum import StrEnum

from mailbridge.parse import ParsedMessage

__all__ = [
    "CHAIN",
    "AuthResults",
    "Evidence",
    "MethodResult",
    "TrustContext",
    "TrustResult",
    "TrustRule",
    "Verdict",
    "judge_headers",
    "judge_trust",
    "parse_authentication_results",
]

HEADER = "Authentication-Results"
MAX_HEADERS = 50
"""Only the topmost headers are looked at; a hostile message may carry thousands."""
MAX_HEADER_CHARS = 8192
"""A longer header value is treated as unreadable rather than parsed."""

# RFC 8601 section 2.7 result words; "hardfail" is the deprecated spelling of fail.
_RESULTS = frozenset(
    {"pass", "fail", "softfail", "neutral", "none", "temperror", "permerror", "policy"}
)
_ALIASES = {"hardfail": "fail"}
_METHODS = ("dkim", "spf", "dmarc")
_HEADER_ERRORS = (ValueError, IndexError, TypeError, AttributeError, LookupError)

_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+./^_`{|}~-]+")
_PAIR = re.compile(r'([^\s=";]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s";]*)')
_STARTS_WITH_PAIR = re.compile(r'\s*[^\s=";]+\s*=')


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class TrustContext:
    """The authserv-ids of our own MTAs (or of the provider we poll); see the module docstring."""

    trusted_authserv_ids: frozenset[str] = frozenset()


@dataclass(frozen=True)
class MethodResult:
    """One ``method=result`` of a header, with its properties (``header.d`` → ``example.com``)."""

    method: str
    result: str
    properties: Mapping[str, str] = field(default_factory=dict)

    @property
    def domain(self) -> str | None:
        """The domain this result is about: DKIM ``header.d`` (else ``header.i``),
        SPF ``smtp.mailfrom`` (Google's older ``smtp.mail``, else ``smtp.helo``),
        DMARC ``header.from``."""
        names = {
            "dkim": ("header.d", "header.i"),
            "spf": ("smtp.mailfrom", "smtp.mail", "smtp.helo"),
            "dmarc": ("header.from",),
        }.get(self.method, ())
        for name in names:
            domain = _domain(self.properties.get(name, ""))
            if domain:
                return domain
        return None


@dataclass(frozen=True)
class AuthResults:
    """One parsed header; ``authserv_id`` is ``None`` when the writer left it out."""

    authserv_id: str | None
    results: tuple[MethodResult, ...]


@dataclass(frozen=True)
class Evidence:
    """What the rules look at: the From domain and the results of the believed headers."""

    from_domain: str | None
    results: tuple[MethodResult, ...]
    authserv_ids: tuple[str, ...]  # of the believed headers, topmost first; "" for none
    ignored: int  # headers not believed (untrusted writer, or below the topmost)
    malformed: int  # headers that would have been believed but could not be read

    def first(self, method: str) -> MethodResult | None:
        return next((r for r in self.results if r.method == method), None)

    def dmarc(self) -> MethodResult | None:
        """The topmost DMARC result about this From domain (one without header.from counts)."""
        return next(
            (
                r
                for r in self.results
                if r.method == "dmarc" and (r.domain is None or r.domain == self.from_domain)
            ),
            None,
        )

    def dkim_passes(self) -> list[MethodResult]:
        return [r for r in self.results if r.method == "dkim" and r.result == "pass"]

    def aligned_dkim(self) -> MethodResult | None:
        return next((r for r in self.dkim_passes() if _aligned(r.domain, self.from_domain)), None)


@dataclass(frozen=True)
class TrustRule:
    """A named check; ``description`` says what it means when it hits."""

    name: str
    description: str
    check: Callable[[Evidence], bool]


@dataclass(frozen=True)
class TrustResult:
    """The judgement and the evidence: one result per method, the hits of :data:`CHAIN`.

    ``dkim`` is the aligned passing signature's result if any, else the first
    passing one, else the first; ``aligned_domain`` is the authenticated
    domain that matches the From address (DMARC's header.from or the DKIM
    signer), ``None`` unless the verdict is a pass.
    """

    dkim: str | None
    spf: str | None
    dmarc: str | None
    aligned_domain: str | None
    verdict: Verdict
    hits: tuple[str, ...]
    dkim_domain: str | None = None
    spf_domain: str | None = None
    authserv_ids: tuple[str, ...] = ()
    ignored_headers: int = 0

    def as_dict(self) -> dict[str, object]:
        """JSON-ready (lists, plain strings)."""
        return {
            "verdict": str(self.verdict),
            "dkim": self.dkim,
            "spf": self.spf,
            "dmarc": self.dmarc,
            "aligned_domain": self.aligned_domain,
            "dkim_domain": self.dkim_domain,
            "spf_domain": self.spf_domain,
            "hits": list(self.hits),
            "authserv_ids": list(self.authserv_ids),
            "ignored_headers": self.ignored_headers,
        }


# -- reading one header ------------------------------------------------------


def _domain(value: str) -> str | None:
    """The domain of ``example.com``, ``@example.com``, ``<a@example.com>``; None for none/<>."""
    domain = value.strip().strip("<>").rsplit("@", 1)[-1].strip().rstrip(".").lower()
    return domain if domain and domain != "none" and "." in domain else None


def _aligned(signer: str | None, from_domain: str | None) -> bool:
    """``signer`` is the From domain or a parent of it (see the module docstring)."""
    if not signer or not from_domain or "." not in signer:
        return False
    return from_domain == signer or from_domain.endswith("." + signer)


def _without_comments(value: str) -> str | None:
    """``value`` with (nested) comments replaced by a blank; None if unbalanced."""
    out: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for char in value:
        if escaped:
            escaped = False
            if not depth:
                out.append(char)
        elif char == "\\" and (quoted or depth):
            escaped = True
            if not depth:
                out.append(char)
        elif quoted:
            out.append(char)
            quoted = char != '"'
        elif char == "(":
            depth += 1
            out.append(" ")
        elif char == ")":
            if not depth:
                return None
            depth -= 1
        elif not depth:
            quoted = char == '"'
            out.append(char)
    return None if depth or quoted or escaped else "".join(out)


def _segments(value: str) -> list[str]:
    """Split on ``;`` outside quoted strings."""
    parts: list[str] = []
    start = 0
    quoted = False
    escaped = False
    for index, char in enumerate(value):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            parts.append(value[start:index])
            start = index + 1
    parts.append(value[start:])
    return [p.strip() for p in parts]


def _resinfo(segment: str) -> MethodResult | None:
    """``method[/version]=result [reason=…] ptype.prop=value …``; None if not one of ours.

    Pairs without a dot after the result (``reason=``, Microsoft's
    ``action=none``) are kept as properties too; a segment of properties
    alone (Yahoo's ``header.i=@…`` after a stray ``;``) is skipped.
    """
    pairs = [(k.lower(), v.strip('"')) for k, v in _PAIR.findall(segment)]
    if not pairs or "." in pairs[0][0]:
        return None
    method = pairs[0][0].split("/", 1)[0]
    result = _ALIASES.get(pairs[0][1].lower(), pairs[0][1].lower())
    if result not in _RESULTS:
        return None
    return MethodResult(method, result, dict(pairs[1:]))


def parse_authentication_results(value: str) -> AuthResults | None:
    """Parse one header value (RFC 8601 section 2.2), leniently; None when unreadable.

    Tolerated, because real servers write them: a missing authserv-id
    (Exchange Online starts with ``spf=…``), ``;`` without a space, results
    in any case (``spf=None``), stray segments. Unreadable: unbalanced
    comments or quotes, an over-long value, no ``;`` at all, or no result
    and no explicit ``none``.
    """
    if len(value) > MAX_HEADER_CHARS:
        return None
    text = _without_comments(value)
    if text is None or not text.strip():
        return None
    segments = _segments(" ".join(text.split()))
    head, rest = segments[0], segments[1:]
    authserv_id: str | None = None
    if not _STARTS_WITH_PAIR.match(head):
        words = head.split()
        if not words or not _TOKEN.fullmatch(words[0]) or not rest:
            return None
        authserv_id = words[0].lower()
        head = " ".join(words[1:])  # a version number, or junk like Yahoo's "from=…"
    found = [r for r in (_resinfo(s) for s in (head, *rest) if s) if r is not None]
    explicit_none = [s.lower() for s in rest if s] == ["none"]
    if not found and not explicit_none:
        return None
    return AuthResults(authserv_id, tuple(found))


# -- the chain ---------------------------------------------------------------


def _dmarc_is(result: str) -> Callable[[Evidence], bool]:
    def check(evidence: Evidence) -> bool:
        dmarc = evidence.dmarc()
        return dmarc is not None and dmarc.result == result

    return check


def _spf_fail_without_dkim(evidence: Evidence) -> bool:
    spf = evidence.first("spf")
    return spf is not None and spf.result == "fail" and not evidence.dkim_passes()


def _dmarc_other_domain(evidence: Evidence) -> bool:
    return any(
        r.method == "dmarc" and r.domain is not None and r.domain != evidence.from_domain
        for r in evidence.results
    )


CHAIN: tuple[tuple[TrustRule, Verdict | None], ...] = (
    (TrustRule("dmarc_pass", "the receiving server's DMARC check of the From domain passed",
               _dmarc_is("pass")), Verdict.PASS),
    (TrustRule("dmarc_fail", "DMARC failed: the From domain's owner does not vouch for this mail",
               _dmarc_is("fail")), Verdict.FAIL),
    (TrustRule("dkim_aligned_pass", "a valid DKIM signature by the From domain or a parent",
               lambda e: e.aligned_dkim() is not None), Verdict.PASS),
    (TrustRule("spf_fail_without_dkim", "SPF failed and no DKIM signature passed",
               _spf_fail_without_dkim), Verdict.FAIL),
    (TrustRule("no_trusted_header", "no readable Authentication-Results from a trusted server",
               lambda e: not e.authserv_ids), Verdict.UNKNOWN),
    (TrustRule("dmarc_other_domain", "a DMARC result about another domain than From: not used",
               _dmarc_other_domain), None),
    (TrustRule("untrusted_headers_ignored", "headers from other servers (or lower down) ignored",
               lambda e: e.ignored > 0), None),
    (TrustRule("malformed_header", "a header from a trusted position could not be read",
               lambda e: e.malformed > 0), None),
)  # fmt: skip


def _evidence(headers: Sequence[str], from_address: str | None, ctx: TrustContext) -> Evidence:
    trusted = frozenset(i.lower() for i in ctx.trusted_authserv_ids)
    results: list[MethodResult] = []
    ids: list[str] = []
    ignored = malformed = 0
    for position, value in enumerate(headers[:MAX_HEADERS]):
        if not trusted and position > 0:
            ignored += 1
            continue
        parsed = parse_authentication_results(value)
        if parsed is None:
            # With a set, an unreadable header counts as ours only if it starts with our id.
            if not trusted or _claims_trusted_id(value, trusted):
                malformed += 1
            else:
                ignored += 1
            continue
        if trusted and parsed.authserv_id not in trusted:
            ignored += 1
            continue
        ids.append(parsed.authserv_id or "")
        results.extend(r for r in parsed.results if r.method in _METHODS)
    ignored += max(0, len(headers) - MAX_HEADERS)
    return Evidence(
        from_domain=_domain(from_address or ""),
        results=tuple(results),
        authserv_ids=tuple(ids),
        ignored=ignored,
        malformed=malformed,
    )


def _claims_trusted_id(value: str, trusted: frozenset[str]) -> bool:
    words = value.split(None, 1)
    return bool(words) and words[0].rstrip(";").lower() in trusted


def judge_headers(
    headers: Sequence[str], from_address: str | None, ctx: TrustContext
) -> TrustResult:
    """Judge ``from_address`` by ``headers`` (the Authentication-Results values, topmost first).

    Never raises on hostile input: anything unreadable only makes the
    verdict less certain.
    """
    evidence = _evidence(headers, from_address, ctx)
    hits: list[str] = []
    verdict: Verdict | None = None
    for rule, target in CHAIN:
        if rule.check(evidence):
            hits.append(rule.name)
            if target is not None:
                verdict = verdict or target
    verdict = verdict or Verdict.UNKNOWN
    passes = evidence.dkim_passes()
    aligned = evidence.aligned_dkim()
    dkim = aligned or next(iter(passes), None) or evidence.first("dkim")
    spf = evidence.first("spf")
    dmarc = evidence.dmarc()
    aligned_domain: str | None = None
    if verdict == Verdict.PASS:
        if dmarc is not None and dmarc.result == "pass":
            aligned_domain = dmarc.domain or evidence.from_domain
        elif aligned is not None:
            aligned_domain = aligned.domain
    return TrustResult(
        dkim=dkim.result if dkim else None,
        spf=spf.result if spf else None,
        dmarc=dmarc.result if dmarc else None,
        aligned_domain=aligned_domain,
        verdict=verdict,
        hits=tuple(hits),
        dkim_domain=dkim.domain if dkim else None,
        spf_domain=spf.domain if spf else None,
        authserv_ids=evidence.authserv_ids,
        ignored_headers=evidence.ignored,
    )


def _header_values(message: Message) -> list[str]:
    try:
        return [str(v) for v in (message.get_all(HEADER) or [])]
    except _HEADER_ERRORS:
        return []


def judge_trust(parsed: ParsedMessage, ctx: TrustContext) -> TrustResult:
    """The pipeline step: judge ``parsed``'s From address by its Authentication-Results."""
    return judge_headers(_header_values(parsed.message), parsed.from_address, ctx)
