"""Sender trust from Authentication-Results: which headers are believed, and the verdict."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mailbridge.parse import ParsedMessage, parse_message
from mailbridge.trust import (
    CHAIN,
    MethodResult,
    TrustContext,
    Verdict,
    judge_headers,
    judge_trust,
    parse_authentication_results,
)

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
BOUNCES = CORPUS / "bounces_autoreplies"
needs_corpus = pytest.mark.skipif(
    not CORPUS.exists() and not os.environ.get("CI"), reason="shared corpora not present"
)

TOPMOST = TrustContext()
OURS = TrustContext(trusted_authserv_ids=frozenset({"mx.billbox.test"}))

# Gmail / Google Workspace, as written by mx.google.com (folded as received).
GMAIL = (
    "mx.google.com;\r\n"
    "       dkim=pass header.i=@example.com header.s=20230601 header.b=AbC+dE/f;\r\n"
    "       spf=pass (google.com: domain of ana@example.com designates 209.85.220.41 as\r\n"
    "        permitted sender) smtp.mailfrom=ana@example.com;\r\n"
    "       dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=example.com"
)
# Exchange Online: no authserv-id, ";" without a blank, non-standard action= and compauth.
MICROSOFT = (
    "spf=pass (sender IP is 40.107.22.41)\r\n"
    " smtp.mailfrom=example.com; dkim=pass (signature was verified)\r\n"
    " header.d=example.com;dmarc=pass action=none\r\n"
    " header.from=example.com;compauth=pass reason=100"
)


def message(*auth_results: str, sender: str = "ana@example.com") -> ParsedMessage:
    headers = "".join(f"Authentication-Results: {value}\r\n" for value in auth_results)
    raw = (
        f"{headers}From: Ana <{sender}>\r\nTo: billing@reply.billbox.test\r\n"
        "Subject: Re: receipt\r\nMessage-ID: <t1@example.com>\r\n\r\nHello\r\n"
    ).encode()
    parsed = parse_message(raw)
    assert isinstance(parsed, ParsedMessage)
    return parsed


def test_gmail_results_with_dmarc_pass_are_a_pass():
    """Google's header: DMARC pass decides; DKIM (header.i) and SPF (an address) are reported."""
    result = judge_trust(message(GMAIL), TOPMOST)
    assert result.verdict == Verdict.PASS
    assert (result.dkim, result.spf, result.dmarc) == ("pass", "pass", "pass")
    assert result.dkim_domain == "example.com"
    assert result.spf_domain == "example.com"
    assert result.aligned_domain == "example.com"
    assert result.hits == ("dmarc_pass", "dkim_aligned_pass")
    assert result.authserv_ids == ("mx.google.com",)


def test_microsoft_results_without_an_authserv_id_are_read_when_topmost():
    """Exchange Online writes no authserv-id and packs ';' tightly; it still reads as a pass."""
    result = judge_trust(message(MICROSOFT), TOPMOST)
    assert result.verdict == Verdict.PASS
    assert (result.dkim, result.spf, result.dmarc) == ("pass", "pass", "pass")
    assert (result.dkim_domain, result.spf_domain) == ("example.com", "example.com")
    assert result.authserv_ids == ("",)


def test_a_header_without_authserv_id_never_matches_a_configured_set():
    """With our MTA ids configured, a header that names no server is nobody's: unknown."""
    result = judge_trust(message(MICROSOFT), OURS)
    assert result.verdict == Verdict.UNKNOWN
    assert result.hits == ("no_trusted_header", "untrusted_headers_ignored")


def test_a_forged_lower_header_is_ignored_with_the_default_topmost_policy():
    """The sender wrote dmarc=pass below our MX's header; only our topmost header counts."""
    ours = "mx.billbox.test; spf=fail smtp.mailfrom=bank.example; dkim=none; dmarc=none"
    forged = "mx.google.com; dkim=pass header.d=bank.example; dmarc=pass header.from=bank.example"
    result = judge_trust(message(ours, forged, sender="ceo@bank.example"), TOPMOST)
    assert result.verdict == Verdict.FAIL
    assert result.hits == ("spf_fail_without_dkim", "untrusted_headers_ignored")
    assert result.dkim == "none" and result.dmarc == "none"
    assert result.ignored_headers == 1


def test_a_forged_header_from_another_server_is_ignored_with_a_configured_set():
    """Headers are believed by authserv-id: a forged mx.google.com one is not ours."""
    forged = "mx.google.com; dkim=pass header.d=bank.example; dmarc=pass header.from=bank.example"
    ours = "mx.billbox.test; spf=softfail smtp.mailfrom=bank.example"
    parsed = message(forged, ours, sender="ceo@bank.example")
    result = judge_trust(parsed, OURS)
    assert result.verdict == Verdict.UNKNOWN
    assert result.authserv_ids == ("mx.billbox.test",)
    assert result.spf == "softfail" and result.dkim is None
    trusting_google = TrustContext(frozenset({"MX.Google.com"}))
    assert judge_trust(parsed, trusting_google).verdict == Verdict.PASS


def test_an_unreadable_topmost_header_is_not_replaced_by_the_one_below():
    """Falling back to the next header down would hand the decision to the sender."""
    forged = "mx.google.com; dmarc=pass header.from=example.com"
    result = judge_trust(message("mx.billbox.test; dkim=pass (unclosed", forged), TOPMOST)
    assert result.verdict == Verdict.UNKNOWN
    assert result.hits == ("no_trusted_header", "untrusted_headers_ignored", "malformed_header")


def test_several_headers_of_our_own_mta_are_merged_topmost_first():
    """Postfix with OpenDMARC, OpenDKIM and policyd-spf: one header per milter, one id."""
    parsed = message(
        "mx.billbox.test; dmarc=fail (p=none dis=none) header.from=example.com",
        "mx.billbox.test; dkim=pass (2048-bit key) header.d=partner.example header.s=s1",
        "mx.billbox.test; spf=pass (mailfrom) smtp.mailfrom=bounces@esp.example",
    )
    result = judge_trust(parsed, OURS)
    assert result.authserv_ids == ("mx.billbox.test",) * 3
    assert (result.dmarc, result.dkim, result.spf) == ("fail", "pass", "pass")
    assert result.verdict == Verdict.FAIL
    assert result.hits == ("dmarc_fail",)
    assert result.aligned_domain is None


def test_no_header_means_unknown():
    """Mail delivered without any Authentication-Results (a plain SMTP hop) is unknown."""
    result = judge_trust(message(), TOPMOST)
    assert result.verdict == Verdict.UNKNOWN
    assert result.hits == ("no_trusted_header",)
    assert (result.dkim, result.spf, result.dmarc, result.aligned_domain) == (None,) * 4


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "garbage without any structure",
        "mx.billbox.test; dkim=pass (unclosed comment",
        'mx.billbox.test; dkim=pass reason="unterminated',
        "mx.billbox.test; dkim=pass) stray close",
        "mx.billbox.test; dkim",
        "mx.billbox.test; dkim=maybe header.d=example.com",
        "; ; ;",
        "=;=;=",
        "mx.billbox.test; " + "(" * 5000 + ")" * 5000,
        "mx.billbox.test; dkim=pass header.d=" + "a" * 20000,
        "mx.billbox.test\\; dmarc=pass",
        "\x00\x01; dmarc=pass",
    ],
)
def test_a_malformed_header_is_unknown_and_never_raises(value):
    """Whatever the header holds, the result is unknown, never an exception."""
    result = judge_headers([value], "ana@example.com", TOPMOST)
    assert result.verdict == Verdict.UNKNOWN
    assert judge_headers([value], "ana@example.com", OURS).verdict == Verdict.UNKNOWN


def test_undecodable_header_bytes_in_a_message_are_unknown():
    """8-bit junk in the raw header goes through the email parser without an exception."""
    raw = (
        b"Authentication-Results: mx.billbox.test; \xff\xfe dmarc=\xc3(pass\r\n"
        b"From: ana@example.com\r\nSubject: x\r\n\r\nbody\r\n"
    )
    parsed = parse_message(raw)
    assert isinstance(parsed, ParsedMessage)
    assert judge_trust(parsed, TOPMOST).verdict == Verdict.UNKNOWN


@pytest.mark.parametrize(
    ("signer", "sender", "verdict"),
    [
        ("example.com", "ana@example.com", Verdict.PASS),
        ("example.com", "billing@mail.example.com", Verdict.PASS),  # a parent signs
        ("mail.example.com", "ana@example.com", Verdict.UNKNOWN),  # a subdomain does not
        ("example.com.evil.test", "ana@example.com", Verdict.UNKNOWN),
        ("notexample.com", "ana@example.com", Verdict.UNKNOWN),
        ("esp.example", "ana@example.com", Verdict.UNKNOWN),  # a mailing service's own key
    ],
)
def test_a_dkim_pass_counts_only_when_aligned_with_the_from_domain(signer, sender, verdict):
    """Without DMARC, DKIM decides only for the From domain itself or a parent of it."""
    header = f"mx.billbox.test; dkim=pass header.d={signer}; spf=neutral smtp.mailfrom=x.test"
    result = judge_headers([header], sender, OURS)
    assert result.verdict == verdict
    assert result.aligned_domain == (signer if verdict == Verdict.PASS else None)


@pytest.mark.parametrize(
    ("header", "verdict", "hits"),
    [
        ("spf=fail smtp.mailfrom=example.com", Verdict.FAIL, ("spf_fail_without_dkim",)),
        ("spf=hardfail smtp.mailfrom=example.com", Verdict.FAIL, ("spf_fail_without_dkim",)),
        ("spf=fail smtp.mailfrom=a.test; dkim=pass header.d=list.test", Verdict.UNKNOWN, ()),
        ("spf=softfail smtp.mailfrom=example.com; dkim=none", Verdict.UNKNOWN, ()),
        ("spf=pass smtp.mailfrom=example.com", Verdict.UNKNOWN, ()),
        ("spf=temperror; dkim=temperror header.d=example.com", Verdict.UNKNOWN, ()),
        ("dmarc=fail header.from=example.com; dkim=pass header.d=example.com", Verdict.FAIL,
         ("dmarc_fail", "dkim_aligned_pass")),
        ("dmarc=pass header.from=example.com; spf=fail", Verdict.PASS,
         ("dmarc_pass", "spf_fail_without_dkim")),
        ("dmarc=pass header.from=other.test; spf=fail", Verdict.FAIL,
         ("spf_fail_without_dkim", "dmarc_other_domain")),
        ("DMARC=PASS header.from=EXAMPLE.COM", Verdict.PASS, ("dmarc_pass",)),
    ],
)  # fmt: skip
def test_the_chain_decides_in_table_order(header, verdict, hits):
    """DMARC first, then aligned DKIM, then SPF fail without DKIM; every hit is recorded."""
    result = judge_headers([f"mx.billbox.test; {header}"], "ana@example.com", OURS)
    assert result.verdict == verdict
    assert result.hits == hits


def test_the_parser_reads_comments_quotes_versions_and_none():
    """RFC 8601 syntax: nested comments, quoted values, a version, and the no-result form."""
    parsed = parse_authentication_results(
        'MX.Billbox.Test 1; dkim/1=Pass (good (nested) sig) header.d="example.com" '
        'reason="key; valid"; spf = fail smtp.mailfrom=<>'
    )
    assert parsed is not None
    assert parsed.authserv_id == "mx.billbox.test"
    assert parsed.results == (
        MethodResult("dkim", "pass", {"header.d": "example.com", "reason": "key; valid"}),
        MethodResult("spf", "fail", {"smtp.mailfrom": "<>"}),
    )
    assert parsed.results[1].domain is None
    none = parse_authentication_results("mx.billbox.test; none")
    assert none is not None and none.results == ()
    assert parse_authentication_results("mx.billbox.test") is None


def test_the_result_is_json_ready():
    """The report and the message row store the result as JSON."""
    result = judge_trust(message(GMAIL), TOPMOST).as_dict()
    assert json.loads(json.dumps(result)) == result
    assert result["verdict"] == "pass"


def test_every_rule_has_a_unique_name_and_a_description():
    """The hits stored on a row must say unambiguously which rule fired."""
    names = [rule.name for rule, _verdict in CHAIN]
    assert len(names) == len(set(names))
    assert all(rule.description for rule, _verdict in CHAIN)


@needs_corpus
@pytest.mark.parametrize(
    ("path", "verdict", "hits"),
    [
        # Exchange Online, no authserv-id and bare "outlook.com;" segments
        ("sisimai_set_of_emails/lhost-office365-04.eml", Verdict.PASS, ("dmarc_pass",)),
        # Exchange Online: dmarc=fail, dkim=none header.d=none
        ("mimekit/bounce.eml", Verdict.FAIL, ("dmarc_fail",)),
        # Google, older "smtp.mail=" spelling, DKIM header.i only
        ("flanker/russian-attachment-yahoo.eml", Verdict.PASS, ("dkim_aligned_pass",)),
        # Google: dmarc, dkim and spf (smtp.helo)
        ("sisimai_set_of_emails/rfc3464-54.eml", Verdict.PASS,
         ("dmarc_pass", "dkim_aligned_pass")),
        # Yahoo: "from=" after the authserv-id, header.i in a segment of its own
        ("sisimai_set_of_emails/lhost-yahoo-01.eml", Verdict.UNKNOWN, ()),
    ],
)  # fmt: skip
def test_real_world_headers_from_the_shared_corpus(path, verdict, hits):
    """Headers as real servers wrote them, with the topmost policy."""
    parsed = parse_message((BOUNCES / path).read_bytes())
    assert isinstance(parsed, ParsedMessage)
    result = judge_trust(parsed, TOPMOST)
    assert (result.verdict, result.hits) == (verdict, hits)
