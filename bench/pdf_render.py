"""Our document render against a bare xhtml2pdf render of the same HTML, in the same run.

Run ``python -m bench.pdf_render [--runs 7] [--lines 5 50 500]``.

* **bare**: ``pisa.CreatePDF`` of the HTML our template produced for that
  document, with the simplest ``link_callback`` that finds the fonts next to
  the template, xhtml2pdf's default resource policy, nothing cached by us.
* **ours**: ``billbox.documents.render.render_document`` from the document
  rows: context building, Babel formatting, the cached Jinja template, the
  gated ``link_callback`` and the server resource policy.

Both are warmed once (imports, xhtml2pdf's own font registration), then the
median of ``--runs`` is reported with the ratio ours/bare (target <= 1.2).
Peak RSS is measured for each line count in a fresh subprocess that
renders one document, so earlier, larger renders do not inflate it.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from billbox.documents.content import line_rows, tax_rows
from billbox.documents.render import TEMPLATE, document_context, render_document
from billbox.models import (
    Brand,
    Document,
    DocumentKind,
    DocumentLine,
    DocumentState,
    DocumentTaxLine,
)
from billbox.pdf import DOCUMENTS_DIR, renderer
from billbox.tax import Buyer, Line, Registration, Seller, compute_totals, determine

AT = datetime(2026, 11, 20, tzinfo=UTC)


def sample(lines: int) -> tuple[Document, list[DocumentLine], list[DocumentTaxLine], Brand]:
    """A German invoice of ``lines`` lines, built in memory exactly as the issuer stores one."""
    brand = Brand(
        slug="bench", name="Northwind Cloud", legal_name="Northwind Cloud GmbH",
        address="Friedrichstraße 123\n10117 Berlin", country="DE",
        tax_registrations=[{"scheme": "eu_vat", "country": "DE", "number": "DE136695976"}],
        footer="Northwind Cloud GmbH · Friedrichstraße 123 · 10117 Berlin", locale="de",
    )  # fmt: skip
    decision = determine(Seller("DE", (Registration("eu_vat", "DE", "DE136695976"),)), Buyer("DE"))
    items = [Line(f"Position {i + 1}: Speicher 100 GB", 1 + i % 3, 900 + i) for i in range(lines)]
    totals = compute_totals(items, decision, "EUR")
    document = Document(
        id=1, brand_id=1, kind=DocumentKind.INVOICE, state=DocumentState.NUMBERED,
        series="invoice", sequence=1, number="INV-2026-000001", source_key="bench",
        currency="EUR", subtotal=totals.subtotal, tax_total=totals.tax_total,
        total=totals.total, tax_treatment=decision.treatment.value, locale="de",
        title="Invoice", payment_method="Visa •••• 4242", billing_url="https://billing.example.com/billing",
        seller={"name": brand.name, "legal_name": brand.legal_name, "address": brand.address,
                "registrations": [{"label": "VAT", "number": "DE136695976"}]},
        buyer={"name": "Jürgen Groß", "address": "Hauptstraße 5\n10115 Berlin", "country": "DE"},
        issued_at=AT, supplied_at=AT,
    )  # fmt: skip
    rows = line_rows(1, items, decision)
    taxes = tax_rows(1, totals)
    return document, rows, taxes, brand


def _bare_callback(uri: str, _rel: object) -> str:
    return str(DOCUMENTS_DIR / uri) if not uri.startswith(("data:", "http")) else uri


def bare(html: str) -> bytes:
    from xhtml2pdf import pisa

    out = io.BytesIO()
    pisa.CreatePDF(html, dest=out, link_callback=_bare_callback, encoding="utf-8")
    return out.getvalue()


def paired_medians_ms(
    first: Callable[[], object], second: Callable[[], object], runs: int
) -> tuple[float, float]:
    """Median CPU time of each (one thread), alternated so other processes disturb both alike."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for fn, bucket in ((first, times[0]), (second, times[1])):
            start = time.process_time()
            fn()
            bucket.append((time.process_time() - start) * 1000)
    return statistics.median(times[0]), statistics.median(times[1])


def peak_rss_mb(lines: int) -> float:
    """Peak RSS (MB) of a fresh interpreter that renders one ``lines``-line document."""
    code = (
        "import resource, sys\n"
        "from bench.pdf_render import sample\n"
        "from billbox.documents.render import render_document\n"
        f"render_document(*sample({lines}))\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return int(out.strip().splitlines()[-1]) / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--lines", type=int, nargs="+", default=[5, 50, 500])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = []
    for count in args.lines:
        document, rows, taxes, brand = sample(count)
        html = renderer().render_html(TEMPLATE, document_context(document, rows, taxes, brand))
        bare(html)
        render_document(document, rows, taxes, brand)
        runs = max(1, args.runs if count <= 50 else max(3, args.runs // 2))
        bare_ms, ours_ms = paired_medians_ms(
            functools.partial(bare, html),
            functools.partial(render_document, document, rows, taxes, brand),
            runs,
        )
        results.append(
            {
                "lines": count,
                "bare_ms": round(bare_ms, 1),
                "ours_ms": round(ours_ms, 1),
                "ratio": round(ours_ms / bare_ms, 2),
                "peak_rss_mb": round(peak_rss_mb(count), 1),
            }
        )
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"{'lines':>6} {'bare ms':>9} {'ours ms':>9} {'ratio':>6} {'peak RSS MB':>12}")
        for r in results:
            print(
                f"{r['lines']:>6} {r['bare_ms']:>9} {r['ours_ms']:>9} {r['ratio']:>6} "
                f"{r['peak_rss_mb']:>12}"
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(this process peak RSS {peak:.0f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
