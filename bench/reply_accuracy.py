"""Accuracy of reply extraction on the shared ``reply_extraction`` gold sets.

Run ``.venv/bin/python -m bench.reply_accuracy [--extractor NAME] [--misses]``.
Every case of ``shared/corpora/reply_extraction/index.json`` is run through an
extractor and scored the way ``corpora/INDEX.md`` says: ``input`` goes in, the
result is compared with ``expected`` by the case's ``compare`` rule, and
``partial`` cases must satisfy every ``must_contain`` / ``must_not_contain`` /
``must_match`` (a case with both an expected file and assertions needs both).
Rates are reported per source and per ``task`` separately, because the sources
disagree on semantics: talon's ``quote_stripping`` *keeps* "Sent from my
iPhone", every other task strips signatures. The extractor is therefore told
whether to strip signatures; it is never told which file it is looking at.

How the compare rules are read (whitespace at either end never matters for a
ticket body, so every text comparison strips both sides first):

* ``…exact…``, ``…strip()…``, ``…trim()…``: stripped text equality.
* ``html_quote_stripping``: talon's expected value is lxml-serialised HTML;
  INDEX.md says to prefer text content, so both sides are turned into text and
  compared with all whitespace removed. The one "exact HTML" case (empty in,
  empty out) compares the stripped strings.
* ``html_quote_stripping_to_text``: our text with all whitespace removed.
* ``signature_split*``: the body without signature is compared; the signature
  itself is not, since the extractor returns only the reply.

Cases that cannot be scored as a match are counted, not hidden:
``fragment_only`` and ``none`` (crisp asserts only fragment counts, or
nothing), ``signature_only`` (talon asserts only the signature) and
``performance`` (timed: must finish in under a second, reported on its own
line). A crashing extractor scores the case as a miss and is counted.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from mailbridge.reply import extract_reply, extract_reply_rules, html_to_text

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
REPLY_DIR = CORPUS / "reply_extraction"
INDEX = REPLY_DIR / "index.json"
UNSCORED_KINDS = ("fragment_only", "none", "signature_only")
_WS = re.compile(r"\s+")


@dataclass(frozen=True)
class Sample:
    """What an extractor is given: the body, and whether signatures go too."""

    text: str
    html: str | None
    strip_signature: bool
    language: str | None


Extractor = Callable[[Sample], str]


@dataclass
class Tally:
    """Passes over scored cases for one row of the table."""

    passed: int = 0
    total: int = 0

    @property
    def rate(self) -> float:
        return self.passed / self.total if self.total else 0.0


@dataclass
class Score:
    """Everything the report prints; tests/test_reply.py reads ``overall``."""

    by_source: dict[str, Tally] = field(default_factory=dict)
    by_task: dict[str, Tally] = field(default_factory=dict)
    overall: Tally = field(default_factory=Tally)
    unscored: dict[str, int] = field(default_factory=dict)
    perf_passed: int = 0
    perf_total: int = 0
    crashed: int = 0
    misses: list[str] = field(default_factory=list)

    def add(self, source: str, task: str, ok: bool, case_id: str) -> None:
        for tally in (
            self.by_source.setdefault(source, Tally()),
            self.by_task.setdefault(task, Tally()),
            self.overall,
        ):
            tally.total += 1
            tally.passed += ok
        if not ok:
            self.misses.append(case_id)


def _eml_first_plain(raw: bytes) -> str:
    """The first text/plain part, decoded, as talon's test_standard_replies does."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            return str(part.get_content())
    return ""


def load_sample(case: dict[str, Any]) -> Sample:
    """Read a case's input file and say whether its task strips signatures."""
    path = REPLY_DIR / case["input"]
    fmt = case["input_format"]
    # only talon's quote tasks keep "Sent from my iPhone"; see INDEX.md
    strip = not (case["source"] == "talon" and "quote_stripping" in case["task"])
    if fmt == "eml":
        return Sample(_eml_first_plain(path.read_bytes()), None, strip, case.get("language"))
    body = path.read_text(encoding="utf-8", errors="replace")
    if fmt == "html":
        return Sample("", body, strip, case.get("language"))
    return Sample(body, None, strip, case.get("language"))


def _squash(text: str) -> str:
    return _WS.sub("", text)


def _looks_html(text: str) -> bool:
    return bool(re.search(r"<(html|body|div|p|br|span|blockquote)\b", text, re.I))


def judge(case: dict[str, Any], got: str) -> bool:
    """Apply the case's compare rule and its partial assertions to ``got``."""
    ok = True
    if case["expected"]:
        expected = (REPLY_DIR / case["expected"]).read_text(encoding="utf-8")
        task = case["task"]
        if task == "html_quote_stripping" and "exact HTML" not in case["compare"]:
            got_text = html_to_text(got) if _looks_html(got) else got
            ok = _squash(html_to_text(expected)) == _squash(got_text)
        elif task == "html_quote_stripping_to_text":
            got_text = html_to_text(got) if _looks_html(got) else got
            ok = _squash(got_text) == _squash(expected)
        else:
            ok = got.strip() == expected.strip()
    ok = ok and all(s in got for s in case.get("must_contain") or [])
    ok = ok and not any(s in got for s in case.get("must_not_contain") or [])
    return ok and all(re.search(p, got, re.M) for p in case.get("must_match") or [])


def score(extractor: Extractor) -> Score:
    """Run ``extractor`` over every case and tally the results."""
    result = Score()
    for case in json.loads(INDEX.read_text(encoding="utf-8")):
        kind = case["expectation_kind"]
        if kind in UNSCORED_KINDS:
            result.unscored[kind] = result.unscored.get(kind, 0) + 1
            continue
        sample = load_sample(case)
        started = time.perf_counter()
        try:
            got = extractor(sample)
        except ImportError:
            raise
        except Exception:  # a crash is a miss, and the table says how many
            result.crashed += 1
            got = None
        if kind == "performance":
            result.perf_total += 1
            result.perf_passed += got is not None and time.perf_counter() - started < 1.0
            continue
        result.add(case["source"], case["task"], got is not None and judge(case, got), case["id"])
    return result


# ---- extractors ---------------------------------------------------------------------


def _billbox(sample: Sample) -> str:
    return extract_reply(sample.text, sample.html, strip_signature=sample.strip_signature).text


def _fallback(sample: Sample) -> str:
    text = sample.text or html_to_text(sample.html or "")
    return extract_reply_rules(text, strip_signature=sample.strip_signature)[0]


def _talon(sample: Sample) -> str:
    import talon  # type: ignore[import-not-found,import-untyped,unused-ignore]
    from talon import quotations  # type: ignore[import-not-found,import-untyped,unused-ignore]
    from talon.signature.bruteforce import (  # type: ignore[import-not-found,import-untyped,unused-ignore]
        extract_signature,
    )

    talon.init()
    if sample.html is not None:
        reply = html_to_text(quotations.extract_from_html(sample.html))
    else:
        reply = quotations.extract_from_plain(sample.text)
    return str(extract_signature(reply)[0] if sample.strip_signature else reply)


def _email_reply_parser(sample: Sample) -> str:
    from email_reply_parser import (  # type: ignore[import-not-found,import-untyped,unused-ignore]
        EmailReplyParser,
    )

    text = sample.text or html_to_text(sample.html or "")
    if sample.strip_signature:
        return str(EmailReplyParser.parse_reply(text))
    # keep signatures: everything up to the first quoted fragment
    kept = []
    for fragment in EmailReplyParser.read(text).fragments:
        if fragment.quoted or fragment.headers:
            break
        kept.append(fragment.content)
    return "\n".join(kept)


def _mail_parser_reply(sample: Sample) -> str:
    from mailparser_reply import (  # type: ignore[import-not-found,import-untyped,unused-ignore]
        EmailReplyParser,
    )

    text = sample.text or html_to_text(sample.html or "")
    langs = ["en", "de", "fr", "es", "nl", "it", "sv", "pl", "da"]
    replies = EmailReplyParser(languages=langs).read(text).replies
    if not replies:
        return ""
    return str(replies[0].body if sample.strip_signature else replies[0].full_body)


def _quotequail(sample: Sample) -> str:
    import quotequail  # type: ignore[import-not-found,import-untyped,unused-ignore]

    if sample.html is not None:
        parts = quotequail.quote_html(sample.html, quote_intro_line=True)
        return html_to_text(parts[0][1]) if parts and parts[0][0] else ""
    parts = quotequail.quote(sample.text, quote_intro_line=True)
    return str(parts[0][1]) if parts and parts[0][0] else ""


EXTRACTORS: dict[str, Extractor] = {
    "billbox": _billbox,
    "fallback": _fallback,
    "talon": _talon,
    "email-reply-parser": _email_reply_parser,
    "mail-parser-reply": _mail_parser_reply,
    "quotequail": _quotequail,
}


def _row(name: str, tally: Tally) -> str:
    return f"  {name:<86} {tally.passed:>3}/{tally.total:<3} {tally.rate:6.1%}"


def report(name: str, result: Score, misses: bool = False) -> str:
    """The table for one extractor, as plain text."""
    lines = [f"== {name}", " per source:"]
    lines += [_row(k, v) for k, v in sorted(result.by_source.items())]
    lines.append(" per task:")
    lines += [_row(k, v) for k, v in sorted(result.by_task.items())]
    lines.append(_row("OVERALL exact-match", result.overall))
    lines.append(
        f"  performance (< 1 s): {result.perf_passed}/{result.perf_total}; "
        f"crashed: {result.crashed}; not scorable: {result.unscored}"
    )
    if misses:
        lines += [f"  miss: {m}" for m in result.misses]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--extractor", choices=sorted(EXTRACTORS), action="append")
    parser.add_argument("--misses", action="store_true", help="list the missed case ids")
    args = parser.parse_args(argv)
    status = 0
    for name in args.extractor or ["billbox", "fallback"]:
        try:
            result = score(EXTRACTORS[name])
        except ImportError as exc:  # candidates are uninstalled after the evaluation
            print(f"== {name}: not installed ({exc}); pip install it to score it")
            continue
        status |= result.crashed > 0
        print(report(name, result, args.misses))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
