"""The PDFs: every required field per jurisdiction, fonts and locales, and no fetch ever."""

from __future__ import annotations

import base64
import http.server
import io
import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from PIL import Image
from pypdf import PdfReader

from billbox.documents.issue import issue_for_payment
from billbox.documents.view import (
    format_date,
    format_money,
    format_rate,
    line_tax_amounts,
    translate_title,
)
from billbox.pdf import PdfRenderer, logo_data_uri, safe_colour
from tests.document_world import CASES, add_payment, make_world


def norm(text: str) -> str:
    """Extracted text with no-break spaces as spaces and runs of whitespace collapsed."""
    return re.sub(r"\s+", " ", text.replace("\u00a0", " ").replace("\u202f", " "))


def pdf_text(pdf: bytes) -> str:
    return norm(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages))


def fonts_of(pdf: bytes) -> set[str]:
    names = set()
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for font in page["/Resources"]["/Font"].values():
            names.add(str(font.get_object()["/BaseFont"]))
    return names


@pytest.mark.parametrize("key", list(CASES))
def test_each_jurisdiction_prints_every_required_field_and_the_right_totals(session, key):
    """Seller, buyer, tax ids, line, tax summary, totals, title, wording, locale formats."""
    case = CASES[key]
    world = make_world(session, case)
    document = issue_for_payment(session, world.payment.id)
    assert document is not None and document.pdf is not None
    assert (document.subtotal, document.tax_total) == (case.net, case.tax)
    assert document.total + document.rounding_amount == case.amount
    text = pdf_text(document.pdf)
    missing = [expected for expected in case.expect if norm(expected) not in text]
    assert missing == []
    assert text.count(norm(case.title)) >= 1 and document.number in text
    assert case.description in text and "http://127.0.0.1:8000/billing" in text
    for word in case.absent:
        assert word not in text
    assert any("DejaVuSans" in font for font in fonts_of(document.pdf))


def test_the_au_document_is_a_tax_invoice_with_the_abn_and_the_fr_one_says_reverse_charge(
    session,
):
    """The two wordings the law asks for, checked on their own."""
    au = make_world(session, CASES["au"])
    au_doc = issue_for_payment(session, au.payment.id)
    assert au_doc is not None and au_doc.pdf is not None
    text = pdf_text(au_doc.pdf)
    assert "Tax invoice" in text and "ABN: 51824753556" in text and "GST" not in au_doc.title
    fr = make_world(session, replace(CASES["fr_de_reverse_charge"], key="fr2"))
    fr_doc = issue_for_payment(session, fr.payment.id)
    assert (
        fr_doc is not None and fr_doc.pdf is not None and fr_doc.tax_treatment == "reverse_charge"
    )
    text = pdf_text(fr_doc.pdf)
    assert "Autoliquidation" in text and "Article 196 Council Directive 2006/112/EC" in text
    assert "N° TVA: DE136695976" in text


def test_greek_and_cyrillic_names_come_out_of_the_pdf_as_text(session):
    """DejaVu covers Greek and Cyrillic: the names are extractable, not boxes."""
    case = replace(
        CASES["de_domestic"],
        customer={**CASES["de_domestic"].customer, "name": "Ελένη Παπαδοπούλου"},
        description="Тариф «Команда», ноябрь",
    )
    world = make_world(session, case)
    text = pdf_text(issue_for_payment(session, world.payment.id).pdf)  # type: ignore[union-attr,arg-type]
    assert "Ελένη Παπαδοπούλου" in text and "Тариф «Команда», ноябрь" in text


@pytest.mark.parametrize(
    ("locale", "money", "date", "rate"),
    [
        ("en", "€1,234.50", "November 20, 2026", "19%"),
        ("de", "1.234,50 €", "20. November 2026", "19 %"),
        ("fr", "1 234,50 €", "20 novembre 2026", "19 %"),
        ("es", "1.234,50 €", "20 de noviembre de 2026", "19 %"),
    ],
)
def test_money_dates_and_rates_follow_the_customers_locale(locale, money, date, rate):
    """Babel formats for en, de, fr and es: grouping, decimal mark, symbol place, month names."""
    assert norm(format_money(123450, "EUR", locale)) == money
    assert format_date(datetime(2026, 11, 20, tzinfo=UTC), locale) == date
    assert norm(format_rate(Decimal(19), locale)) == rate


def test_titles_are_translated_but_the_gst_words_stay():
    assert translate_title("Invoice", "de") == "Rechnung"
    assert translate_title("Credit note", "fr") == "Avoir"
    assert translate_title("Receipt", "es_MX") == "Recibo"
    assert translate_title("Tax invoice", "de") == "Tax invoice"
    assert translate_title("Invoice", "xx") == "Invoice"


def test_line_taxes_add_up_to_the_tax_summary():
    """Three 0.10 lines at 19 %: the group tax 0.06 is split 2+2+2, never 0.02 x 3 != 0.06."""
    shares = line_tax_amounts([10, 10, 10], [Decimal(19)] * 3, {Decimal(19): 6})
    assert shares == [2, 2, 2]
    shares = line_tax_amounts([333, 333, 334], [Decimal(19)] * 3, {Decimal(19): 190})
    assert sum(shares) == 190 and shares == [63, 63, 64]


# --- PDF safety --------------------------------------------------------------------------


class _Recorder(http.server.BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()
        self.wfile.write(b"\x89PNG\r\n\x1a\n")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def spy() -> Iterator[tuple[str, list[str]]]:
    """A real local HTTP server recording every request it gets."""
    requests: list[str] = []
    handler = type("Recorder", (_Recorder,), {"requests": requests})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()


def evil_references(base: str) -> list[str]:
    return [
        f"{base}/img.png",
        f"{base.replace('http', 'https')}/tls.png",
        "file:///etc/passwd",
        "/etc/passwd",
        "../../../../../../etc/passwd",
        "fonts/../../../../etc/passwd",
        "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'%3E"
        f"%3Cimage href='{base}/svg'/%3E%3C/svg%3E",
    ]


def test_a_template_naming_urls_and_files_fetches_nothing(tmp_path, spy):
    """img, CSS url(), @import, @font-face, link: all refused, zero requests, no file read."""
    base, requests = spy
    (tmp_path / "documents").mkdir()
    refs = evil_references(base)
    images = "".join(f'<img src="{ref}">' for ref in refs)
    css = "".join(f'@import url("{ref}");' for ref in refs[:3])
    (tmp_path / "documents" / "evil.html").write_text(
        f"""<html><head><style>{css}
        @font-face {{ font-family: Evil; src: url("{base}/font.ttf"); }}
        @font-face {{ font-family: Local; src: url("file:///etc/passwd"); }}
        body {{ background-image: url("{base}/bg.png"); }}
        </style><link rel="stylesheet" href="{base}/style.css"></head>
        <body>{images}<div style="background-image: url({base}/inline.png)">body</div>
        <p>{{{{ name }}}}</p></body></html>""",
        encoding="utf-8",
    )
    renderer = PdfRenderer(templates_dir=tmp_path)
    pdf = renderer.render("documents/evil.html", {"name": "ok"})
    assert requests == []
    assert len(renderer.refused()) >= len(refs) + 5
    assert "root:" not in pdf_text(pdf) and b"root:x:0" not in pdf


def test_the_policy_blocks_fetches_even_if_the_callback_let_everything_through(tmp_path, spy):
    """Defence in depth: with a pass-through link_callback the resource policy still refuses."""
    base, requests = spy

    class Careless(PdfRenderer):
        def link_callback(self, uri: object, _relative: object = None) -> str:
            return str(uri)

    html = f'<html><body><img src="{base}/a.png"><img src="/etc/passwd">x</body></html>'
    Careless().html_to_pdf(html)
    assert requests == []


def test_customer_and_brand_text_naming_urls_is_printed_never_fetched(session, spy):
    """Names, addresses, footer and colours carrying URLs or markup: printed, escaped, inert."""
    base, requests = spy
    case = CASES["uk"]
    hostile = f'<img src="{base}/name.png"> {base}/x file:///etc/passwd ../../etc/passwd'
    brand = {
        **case.brand,
        "footer": f'<link rel="stylesheet" href="{base}/footer.css">',
        "legal_text": f"<img src='file:///etc/passwd'> {base}/legal",
        "primary_color": "red;}*{",  # the column holds 7 characters; CSS injection attempt
    }
    customer = {**case.customer, "name": hostile, "address": f"<img src='{base}/addr.png'>"}
    world = make_world(session, replace(case, brand=brand, customer=customer))
    document = issue_for_payment(session, world.payment.id)
    assert document is not None and document.pdf is not None
    assert requests == []
    text = pdf_text(document.pdf)
    assert f"{base}/x" in text and "file:///etc/passwd" in text and "<img src=" in text
    assert "root:x:0" not in text


def test_a_logo_is_embedded_as_png_but_an_svg_or_junk_logo_is_dropped(session, spy):
    """Raster logos are re-encoded and drawn; an SVG (which can reference URLs) never is."""
    base, requests = spy
    image = Image.new("RGB", (300, 100), (11, 57, 84))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    assert (logo_data_uri(buffer.getvalue()) or "").startswith("data:image/png;base64,")
    svg = f'<svg xmlns="http://www.w3.org/2000/svg"><image href="{base}/logo"/></svg>'
    assert logo_data_uri(svg.encode()) is None
    assert logo_data_uri(b"not an image") is None
    case = CASES["au"]
    world = make_world(session, case)
    world.brand.logo = buffer.getvalue()
    session.add(world.brand)
    document = issue_for_payment(session, world.payment.id)
    assert document is not None and document.pdf is not None
    reader = PdfReader(io.BytesIO(document.pdf))
    assert len(reader.pages[0].images) == 1
    world.brand.logo = svg.encode()
    session.add(world.brand)
    second = add_payment(session, world.account, world.customer, case, external_id="pi_svg")
    document = issue_for_payment(session, second.id)
    assert document is not None and document.pdf is not None
    assert len(PdfReader(io.BytesIO(document.pdf)).pages[0].images) == 0
    assert requests == []


def test_the_gate_resolves_only_files_inside_templates_and_media(tmp_path):
    """Relative paths under templates/documents and media/ resolve; everything else is refused."""
    media = tmp_path / "media"
    media.mkdir()
    (media / "stamp.png").write_bytes(b"png")
    (tmp_path / "secret.txt").write_text("secret")
    (media / "link.png").symlink_to(tmp_path / "secret.txt")
    renderer = PdfRenderer(media_dir=media)
    assert renderer.resolve("fonts/DejaVuSans.ttf", frozenset()).endswith("DejaVuSans.ttf")  # type: ignore[union-attr]
    assert renderer.resolve("media/stamp.png") == str((media / "stamp.png").resolve())
    allowed = "data:image/png;base64," + base64.b64encode(b"x").decode()
    assert renderer.resolve(allowed, frozenset({allowed})) == allowed
    for refused in [
        "media/link.png",  # a symlink out of the media folder
        "media/../secret.txt",
        "fonts/missing.ttf",
        str(tmp_path / "secret.txt"),
        "file:///etc/passwd",
        "http://127.0.0.1/x",
        "//127.0.0.1/x",
        "data:image/png;base64,AAAA",
        "fonts\\..\\..\\secret.txt",
        "",
        None,
    ]:
        assert renderer.resolve(refused) is None, refused


def test_brand_colours_must_be_hex():
    assert safe_colour("#0b3954", "#000000") == "#0b3954"
    assert safe_colour("red; background: url(x)", "#000000") == "#000000"


def test_billbox_pdf_render_document_renders_a_stored_document_again(session):
    """The engine-level entry point renders the same text from the stored rows."""
    from sqlmodel import select

    from billbox.models import DocumentLine, DocumentTaxLine
    from billbox.pdf import render_document

    world = make_world(session, CASES["nz"])
    document = issue_for_payment(session, world.payment.id)
    assert document is not None and document.pdf is not None
    lines = session.exec(select(DocumentLine).where(DocumentLine.document_id == document.id)).all()
    taxes = session.exec(
        select(DocumentTaxLine).where(DocumentTaxLine.document_id == document.id)
    ).all()
    again = render_document(document, lines, taxes, world.brand)
    assert pdf_text(again) == pdf_text(document.pdf)
