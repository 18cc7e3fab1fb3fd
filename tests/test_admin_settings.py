"""Brand settings: validation with field errors, tax registrations checked, logo, numbering."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image
from pydantic import SecretStr
from sqlmodel import select

from billbox.brands import LogoError, check_series_format, normalise_logo, parse_registrations
from billbox.models import Brand, DocumentKind, NumberSeries, Role
from billbox.users import create_user
from web import create_app

PASSWORD = "correct horse battery staple"
GOOD = {
    "name": "Northwind",
    "slug": "northwind",
    "legal_name": "Northwind GmbH",
    "address": "Friedrichstraße 1\n10117 Berlin",
    "country": "de",
    "tax_registrations": "eu_vat DE DE136695976\neu_oss DE DE 136 695 976",
    "email_from": "billing@northwind.example.com",
    "locale": "de",
    "default_currency": "eur",
    "primary_color": "#0b3954",
    "accent_color": "#00a6a6",
    "footer": "Northwind GmbH · Berlin",
    "legal_text": "",
    "issue_credit_notes": "1",
}


@pytest.fixture
def client(settings, engine, factory):
    with factory() as s:
        for role in (Role.ADMIN, Role.AGENT, Role.FINANCE):
            create_user(s, f"{role.value}@example.com", role, PASSWORD)
        s.commit()
    configured = settings.model_copy(
        update={"public_url": "https://billbox.test", "secret_key": SecretStr("s" * 32)}
    )
    client = create_app(configured, engine=engine, build_worker=False).test_client()
    client.environ_base["wsgi.url_scheme"] = "https"
    return client


def token(client, url="/admin/login") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(url).get_data(as_text=True))[
        1
    ]


def login(client, who: str) -> str:
    client.post(
        "/admin/login",
        data={"email": f"{who}@example.com", "password": PASSWORD, "csrf_token": token(client)},
    )
    return token(client, "/admin/")


def png(size=(40, 20)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, "#00a6a6").save(out, format="PNG")
    return out.getvalue()


def test_registrations_are_checked_like_tax_ids():
    regs, problems = parse_registrations("eu_vat DE DE136695976\ngb_vat GB 980 7806 84\n\n")
    assert regs == [
        {"scheme": "eu_vat", "country": "DE", "number": "DE136695976"},
        {"scheme": "gb_vat", "country": "GB", "number": "GB980780684"},
    ]
    assert problems == []
    regs, problems = parse_registrations("eu_vat DE DE136695977\nbogus XX 1\nau_gst AU")
    assert regs == []
    assert len(problems) == 3
    assert "line 1" in problems[0] and "checksum" in problems[0].lower()
    assert "unknown tax scheme" in problems[1]
    assert "scheme country number" in problems[2]


def test_a_logo_is_reencoded_and_junk_is_refused():
    data = normalise_logo(png())
    assert data.startswith(b"\x89PNG")
    with pytest.raises(LogoError, match="not a readable image"):
        normalise_logo(b"<svg onload=alert(1)>")
    with pytest.raises(LogoError, match="at most"):
        normalise_logo(png((2500, 10)))
    with pytest.raises(LogoError, match="choose"):
        normalise_logo(b"")


def test_series_formats_must_number_documents():
    assert check_series_format("{prefix}-{year}-{seq:06d}", "INV") is None
    assert check_series_format("{prefix}{seq}", "R") is None
    assert check_series_format("{prefix}-{year}", "INV") is not None
    assert check_series_format("{__class__}", "INV") is not None
    assert check_series_format("{prefix}-{seq}", "bad prefix!") is not None


def test_an_admin_creates_and_edits_a_brand(client, factory):
    csrf = login(client, "admin")
    response = client.post("/admin/settings/brands/new", data={**GOOD, "csrf_token": csrf})
    assert response.status_code == 302
    with factory() as s:
        brand = s.exec(select(Brand)).one()
    assert (brand.country, brand.default_currency, brand.locale) == ("DE", "EUR", "de")
    assert brand.tax_registrations[1] == {
        "scheme": "eu_oss",
        "country": "DE",
        "number": "DE136695976",
    }
    page = client.get(f"/admin/settings/brands/{brand.id}").get_data(as_text=True)
    assert "eu_vat DE DE136695976" in page

    bad = {
        **GOOD,
        "accent_color": "teal",
        "tax_registrations": "eu_vat DE DE136695977",
        "slug": "x y",
    }
    response = client.post(f"/admin/settings/brands/{brand.id}", data={**bad, "csrf_token": csrf})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert (
        "use a colour like #1f2937" in page and "checksum" in page.lower() and "lower-case" in page
    )
    with factory() as s:
        assert s.get(Brand, brand.id).accent_color == "#00a6a6"  # nothing half-saved


def test_logo_upload_and_numbering(client, factory):
    csrf = login(client, "admin")
    client.post("/admin/settings/brands/new", data={**GOOD, "csrf_token": csrf})
    with factory() as s:
        brand_id = s.exec(select(Brand.id)).one()
    response = client.post(
        f"/admin/settings/brands/{brand_id}/logo",
        data={"logo": (io.BytesIO(png()), "logo.png"), "csrf_token": csrf},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    logo = client.get(f"/admin/brands/{brand_id}/logo.png")
    assert logo.status_code == 200 and logo.data.startswith(b"\x89PNG")
    refused = client.post(
        f"/admin/settings/brands/{brand_id}/logo",
        data={"logo": (io.BytesIO(b"GIF89a not really"), "x.gif"), "csrf_token": csrf},
        content_type="multipart/form-data",
    )
    assert refused.status_code == 422
    response = client.post(
        f"/admin/settings/brands/{brand_id}/series/invoice",
        data={"prefix": "NW", "format": "{prefix}/{year}/{seq:05d}", "csrf_token": csrf},
    )
    assert response.status_code == 302
    with factory() as s:
        series = s.exec(select(NumberSeries)).one()
    assert (series.kind, series.prefix, series.format) == (
        DocumentKind.INVOICE,
        "NW",
        "{prefix}/{year}/{seq:05d}",
    )


@pytest.mark.parametrize("who", ["agent", "finance"])
def test_only_admins_reach_settings(client, who):
    csrf = login(client, who)
    assert client.get("/admin/settings/brands").status_code == 403
    response = client.post("/admin/settings/brands/new", data={**GOOD, "csrf_token": csrf})
    assert response.status_code == 403


def test_support_addresses_are_managed_by_admins_and_reach_the_smtp_policy(
    client, factory, settings
):
    from mailbridge.support_addresses import current_policy

    csrf = login(client, "admin")
    page = client.get("/admin/settings/mail").get_data(as_text=True)
    assert "Reply domain" in page
    added = client.post(
        "/admin/settings/mail", data={"address": "Billing@Example.COM", "csrf_token": csrf}
    )
    assert added.status_code == 302
    refused = client.post("/admin/settings/mail", data={"address": "nope", "csrf_token": csrf})
    assert refused.status_code == 422 and "not a valid email address" in refused.get_data(
        as_text=True
    )
    duplicate = client.post(
        "/admin/settings/mail", data={"address": "billing@example.com", "csrf_token": csrf}
    )
    assert "already a support address" in duplicate.get_data(as_text=True)
    policy = current_policy(factory, "reply.example.com", ["help@example.org"])
    assert policy.accepts("billing@example.com") and policy.accepts("help@example.org")
    assert policy.accepts("anything@reply.example.com") and not policy.accepts("x@example.com")
    client.post("/admin/settings/mail", data={"remove": "billing@example.com", "csrf_token": csrf})
    assert not current_policy(factory, "reply.example.com", []).accepts("billing@example.com")


def test_relay_and_imap_passwords_are_masked(settings, engine):
    from web.admin.settings import _masked

    assert _masked("smtps://user:s3cret@relay.example.com:465") == (
        "smtps://user:•••@relay.example.com:465"
    )
    assert (
        _masked("imaps://ana:pw@imap.example.com/INBOX") == "imaps://ana:•••@imap.example.com/INBOX"
    )
    assert _masked(None) == ""


def test_an_admin_previews_the_brands_receipt_as_pdf_and_email(client, factory):
    import io as _io

    from pypdf import PdfReader

    csrf = login(client, "admin")
    client.post("/admin/settings/brands/new", data={**GOOD, "csrf_token": csrf})
    with factory() as s:
        brand_id = s.exec(select(Brand.id)).one()
    pdf = client.get(f"/admin/settings/brands/{brand_id}/preview.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    text = PdfReader(_io.BytesIO(pdf.data)).pages[0].extract_text()
    assert "Northwind GmbH" in text and "DE136695976" in text and "PREVIEW-000001" in text
    email = client.get(f"/admin/settings/brands/{brand_id}/preview-email")
    assert email.status_code == 200 and "PREVIEW-000001" in email.get_data(as_text=True)
    assert email.headers["Content-Security-Policy"].startswith("sandbox")
    with factory() as s:
        assert s.exec(select(NumberSeries)).all() == []  # nothing numbered by a preview


def test_agent_refund_caps_are_set_in_major_units(client, factory):
    csrf = login(client, "admin")
    client.post(
        "/admin/settings/brands/new",
        data={**GOOD, "agent_refund_caps": "EUR 25; usd 10.50", "csrf_token": csrf},
    )
    with factory() as s:
        brand = s.exec(select(Brand)).one()
    assert brand.agent_refund_caps == {"EUR": 2500, "USD": 1050}
    page = client.get(f"/admin/settings/brands/{brand.id}").get_data(as_text=True)
    assert "EUR 25.00; USD 10.50" in page
    bad = client.post(
        f"/admin/settings/brands/{brand.id}",
        data={**GOOD, "agent_refund_caps": "EUR lots", "csrf_token": csrf},
    )
    assert bad.status_code == 422 and "EUR lots" in bad.get_data(as_text=True)
