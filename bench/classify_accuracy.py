"""Accuracy of ``mailbridge.classify`` on the shared bounce / auto-reply corpus.

Run ``.venv/bin/python -m bench.classify_accuracy``. Every labelled message
in ``shared/corpora/bounces_autoreplies/index.json`` is parsed and
classified; the label is compared with our class (label ``malformed`` is
expected to be a parse failure, shown as our class ``malformed``; a
``parse_message`` that raises, which it promises not to, is ``parse_raised``). Entries
marked ``disputed`` are left out of the scores and listed separately.

For bounces with a sisimai expectation, the status is compared with the
expected ``status`` of any recipient, except where sisimai expects none (ARF)
or one of its own inferred codes (``D.0.9NN``), which no message carries.
The index gives no expected recipient *address* (only ``recipient_index``),
so the recipient is checked independently: it must be an address that
appears in the bounce's raw text (i.e. we found one and did not invent it). Scores are not tuned
to files (INDEX.md): a miss is fixed by fixing a rule family.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailbridge.classify import ClassifyContext, classify
from mailbridge.parse import ParsedMessage, ParseFailure, parse_message

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
INDEX = CORPUS / "bounces_autoreplies" / "index.json"
CONTEXT = ClassifyContext(our_message_id_domain="billbox.invalid", loop_marker="billbox")
# sisimai writes D.0.9NN for a reason it inferred; no message carries such a code
_PSEUDO = re.compile(r"^\d\.0\.9\d\d$")
CLASSES = ("bounce", "auto_reply", "human", "loop", "malformed", "parse_raised")


@dataclass
class Score:
    """Everything the report prints; the test in tests/test_classify.py reads it too."""

    matrix: Counter[tuple[str, str]] = field(default_factory=Counter)
    disputed: list[tuple[str, str, str]] = field(default_factory=list)
    wrong: list[tuple[str, str, str, tuple[str, ...]]] = field(default_factory=list)
    status_pseudo: int = 0
    status_checked: int = 0
    status_matched: int = 0
    recipient_checked: int = 0
    recipient_matched: int = 0

    def precision(self, cls: str) -> float:
        predicted = sum(n for (_lab, ours), n in self.matrix.items() if ours == cls)
        return self.matrix[(cls, cls)] / predicted if predicted else 0.0

    def recall(self, cls: str) -> float:
        actual = sum(n for (lab, _ours), n in self.matrix.items() if lab == cls)
        return self.matrix[(cls, cls)] / actual if actual else 0.0

    def parsed_recall(self, cls: str) -> float:
        """Recall over the messages the parser accepted: the classifier's own share."""
        parsed = {c for c in CLASSES if c not in ("malformed", "parse_raised")}
        actual = sum(n for (lab, ours), n in self.matrix.items() if lab == cls and ours in parsed)
        return self.matrix[(cls, cls)] / actual if actual else 0.0

    def rate(self, matched: int, checked: int) -> float:
        return matched / checked if checked else 0.0


def score(index: Path = INDEX) -> Score:
    entries: list[dict[str, Any]] = json.loads(index.read_text())
    result = Score()
    for entry in entries:
        raw = (index.parent / entry["file"]).read_bytes()
        hits: tuple[str, ...] = ()
        try:
            parsed: ParsedMessage | ParseFailure | None = parse_message(raw)
        except Exception as exc:  # parse_message promises not to raise; show where it does
            parsed, bounce = None, None
            ours, hits = "parse_raised", (type(exc).__name__,)
        if parsed is None:
            pass
        elif isinstance(parsed, ParseFailure):
            ours = "malformed"
            bounce = None
        else:
            found = classify(parsed, CONTEXT)
            ours, hits, bounce = str(found.kind), found.hits, found.bounce
        label = entry["label"]
        if entry.get("disputed"):
            result.disputed.append((entry["file"], label, ours))
            continue
        result.matrix[(label, ours)] += 1
        if label != ours:
            result.wrong.append((entry["file"], label, ours, hits))
        expected = entry.get("expected") or []
        if label == "bounce" and expected and ours == "bounce":
            statuses = {e.get("status") for e in expected} - {"", None}
            if not statuses or all(_PSEUDO.match(s) for s in statuses):
                result.status_pseudo += 1
            else:
                result.status_checked += 1
                result.status_matched += bool(bounce and bounce.status in statuses)
        if label == "bounce" and ours == "bounce":
            result.recipient_checked += 1
            text = raw.decode("latin-1").lower()
            rcpt = bounce.recipient if bounce else None
            if rcpt and "@" in rcpt and text.count(rcpt) > 0:
                result.recipient_matched += 1
    return result


def main() -> int:
    if not INDEX.exists():
        print(f"corpus not found: {INDEX}")
        return 1
    result = score()
    print("confusion matrix (rows: label, columns: our class)")
    print(f"{'':>12}" + "".join(f"{c:>13}" for c in CLASSES))
    for label in CLASSES:
        row = [result.matrix[(label, ours)] for ours in CLASSES]
        if any(row) or label not in ("loop", "parse_raised"):
            print(f"{label:>12}" + "".join(f"{n:>13}" for n in row))
    print()
    print(f"{'class':>12}{'precision':>12}{'recall':>12}{'recall (parsed only)':>22}")
    for cls in ("bounce", "auto_reply", "human", "malformed"):
        print(
            f"{cls:>12}{result.precision(cls):>12.3f}{result.recall(cls):>12.3f}"
            f"{result.parsed_recall(cls):>22.3f}"
        )
    print()
    print(
        f"bounce status matches sisimai: {result.status_matched}/{result.status_checked}"
        f" = {result.rate(result.status_matched, result.status_checked):.3f}"
    )
    print(f"  not scorable (no status or sisimai-inferred D.0.9NN): {result.status_pseudo}")
    print(
        f"bounce recipient found (an address present in the message):"
        f" {result.recipient_matched}/{result.recipient_checked}"
        f" = {result.rate(result.recipient_matched, result.recipient_checked):.3f}"
    )
    print()
    print("disputed (not scored):")
    for file, label, ours in result.disputed:
        print(f"  {file}: label {label}, ours {ours}")
    print("misclassified:")
    for file, label, ours, hits in result.wrong:
        print(f"  {file}: label {label}, ours {ours}, hits {list(hits)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
