"""Admin settings: brands (identity, tax registrations, colours, logo, numbering) and mail."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flask import Response, abort, redirect, render_template, request, url_for
from sqlmodel import col, select

from billbox.brands import (
    SERIES_DEFAULTS,
    LogoError,
    apply_brand_form,
    caps_text,
    check_series_format,
    normalise_logo,
    parse_brand_form,
    registrations_text,
    series_of,
)
from billbox.errors import BillboxError
from billbox.models import Brand, Document, DocumentKind, NumberSeries, Role, SupportAddress
from mailbridge.support_addresses import AddressError, add_address, stored_addresses
from web.admin import bp
from web.app import services
from web.auth import current_user, require_roles

ADMIN = (Role.ADMIN,)
STAFF = (Role.ADMIN, Role.AGENT, Role.FINANCE)


def _form_page(
    brand: Brand | None, form_values: dict[str, Any], errors: dict[str, str], **extra: Any
) -> Any:
    return render_template(
        "admin/brand_form.html",
        brand=brand,
        values=form_values,
        errors=errors,
        kinds=list(DocumentKind),
        defaults=SERIES_DEFAULTS,
        user=current_user(),
        **extra,
    )


def _values_of(brand: Brand) -> dict[str, Any]:
    values = brand.model_dump()
    values["tax_registrations"] = registrations_text(brand.tax_registrations)
    values["agent_refund_caps"] = caps_text(brand.agent_refund_caps or {})
    return values


@bp.get("/settings/brands")
@require_roles(*ADMIN)
def brands() -> Any:
    with services().factory() as db:
        rows = list(db.exec(select(Brand).order_by(col(Brand.name))))
    return render_template("admin/brands.html", brands=rows, user=current_user())


@bp.route("/settings/brands/new", methods=["GET", "POST"])
@require_roles(*ADMIN)
def new_brand() -> Any:
    defaults = {"primary_color": "#1f2937", "accent_color": "#2563eb", "locale": "en",
                "default_currency": "EUR", "issue_credit_notes": True}  # fmt: skip
    if request.method == "GET":
        return _form_page(None, defaults, {})
    with services().factory() as db:
        form = parse_brand_form(request.form, session=db, brand_id=None)
        if not form.ok:
            shown = {**dict(request.form), "issue_credit_notes": form.values["issue_credit_notes"]}
            return _form_page(None, shown, form.errors), 422
        brand = apply_brand_form(Brand(**form.values), form)
        db.add(brand)
        db.commit()
        return redirect(url_for("admin.edit_brand", brand_id=brand.id, saved=1))


@bp.route("/settings/brands/<int:brand_id>", methods=["GET", "POST"])
@require_roles(*ADMIN)
def edit_brand(brand_id: int) -> Any:
    with services().factory() as db:
        brand = db.get(Brand, brand_id)
        if brand is None:
            abort(404)
        series = {s.kind: s for s in series_of(db, brand_id)}
        if request.method == "GET":
            return _form_page(brand, _values_of(brand), {}, series=series,
                              saved=request.args.get("saved") == "1")  # fmt: skip
        form = parse_brand_form(request.form, session=db, brand_id=brand_id)
        if not form.ok:
            shown = {**dict(request.form), "issue_credit_notes": form.values["issue_credit_notes"]}
            return _form_page(brand, shown, form.errors, series=series), 422
        apply_brand_form(brand, form)
        db.add(brand)
        db.commit()
    return redirect(url_for("admin.edit_brand", brand_id=brand_id, saved=1))


@bp.post("/settings/brands/<int:brand_id>/logo")
@require_roles(*ADMIN)
def upload_logo(brand_id: int) -> Any:
    upload = request.files.get("logo")
    with services().factory() as db:
        brand = db.get(Brand, brand_id)
        if brand is None:
            abort(404)
        if request.form.get("remove") == "1":
            brand.logo, brand.logo_content_type = None, None
        else:
            try:
                brand.logo = normalise_logo(upload.read() if upload else b"")
            except LogoError as exc:
                series = {s.kind: s for s in series_of(db, brand_id)}
                return _form_page(brand, _values_of(brand), {"logo": str(exc)}, series=series), 422
            brand.logo_content_type = "image/png"
        db.add(brand)
        db.commit()
    return redirect(url_for("admin.edit_brand", brand_id=brand_id, saved=1))


@bp.post("/settings/brands/<int:brand_id>/series/<kind>")
@require_roles(*ADMIN)
def save_series(brand_id: int, kind: str) -> Any:
    if kind not in DocumentKind._value2member_map_:
        abort(404)
    document_kind = DocumentKind(kind)
    prefix = request.form.get("prefix", "").strip()
    pattern = request.form.get("format", "").strip()
    with services().factory() as db:
        brand = db.get(Brand, brand_id)
        if brand is None:
            abort(404)
        problem = check_series_format(pattern, prefix)
        if problem:
            series = {s.kind: s for s in series_of(db, brand_id)}
            errors = {f"series_{kind}": problem}
            return _form_page(brand, _values_of(brand), errors, series=series), 422
        row = db.exec(
            select(NumberSeries).where(
                NumberSeries.brand_id == brand_id, NumberSeries.kind == document_kind
            )
        ).first()
        if row is None:
            row = NumberSeries(
                brand_id=brand_id, series=SERIES_DEFAULTS[document_kind], kind=document_kind,
                prefix=prefix, format=pattern,
            )  # fmt: skip
        row.prefix, row.format = prefix, pattern
        db.add(row)
        db.commit()
    return redirect(url_for("admin.edit_brand", brand_id=brand_id, saved=1))


@bp.get("/brands/<int:brand_id>/logo.png")
@require_roles(*STAFF)
def brand_logo(brand_id: int) -> Any:
    with services().factory() as db:
        brand = db.get(Brand, brand_id)
        if brand is None or brand.logo is None:
            abort(404)
        return Response(brand.logo, mimetype="image/png")


def _masked(url: str | None) -> str:
    """A URL with its password replaced, for display."""
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username}:•••@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


@bp.route("/settings/mail", methods=["GET", "POST"])
@require_roles(*ADMIN)
def mail_settings() -> Any:
    settings = services().settings
    error = ""
    with services().factory() as db:
        if request.method == "POST":
            remove = request.form.get("remove", "")
            if remove:
                row = db.exec(
                    select(SupportAddress).where(SupportAddress.address == remove)
                ).first()
                if row is not None:
                    db.delete(row)
                    db.commit()
                return redirect(url_for("admin.mail_settings"))
            try:
                add_address(db, request.form.get("address", ""), reply_domain=settings.reply_domain)
                db.commit()
                return redirect(url_for("admin.mail_settings"))
            except AddressError as exc:
                db.rollback()
                error = str(exc)
        stored = stored_addresses(db)
    return render_template(
        "admin/mail_settings.html",
        settings=settings,
        relay=_masked(settings.smtp_relay),
        mailboxes=[_masked(u) for u in settings.imap_url_list],
        configured=settings.support_address_list,
        stored=stored,
        error=error,
        user=current_user(),
    ), (422 if error else 200)


def _preview(brand_id: int) -> tuple[Brand, Document, bytes]:
    from billbox.documents.preview import sample_receipt
    from billbox.documents.render import render_document

    with services().factory() as db:
        brand = db.get(Brand, brand_id)
        if brand is None:
            abort(404)
        db.expunge(brand)
    settings = services().settings
    try:
        document, lines, taxes = sample_receipt(brand, public_url=settings.effective_public_url)
    except BillboxError as exc:
        abort(422, description=f"Cannot build a sample for this brand: {exc}")
    pdf = render_document(document, lines, taxes, brand, media_dir=settings.var_dir / "media")
    return brand, document, pdf


@bp.get("/settings/brands/<int:brand_id>/preview.pdf")
@require_roles(*ADMIN)
def preview_pdf(brand_id: int) -> Any:
    """A sample receipt as this brand would issue it now (nothing is stored or numbered)."""
    _, _, pdf = _preview(brand_id)
    response = Response(pdf, mimetype="application/pdf")
    response.headers.set("Content-Disposition", "inline", filename="preview.pdf")
    return response


@bp.get("/settings/brands/<int:brand_id>/preview-email")
@require_roles(*ADMIN)
def preview_email(brand_id: int) -> Any:
    """The HTML of the sample receipt's email, sandboxed: it is shown, never run."""
    from email import message_from_bytes, policy

    from mailbridge.compose import ComposeConfig, ComposeError, compose_document_email

    brand, document, pdf = _preview(brand_id)
    document.pdf = pdf
    settings = services().settings
    try:
        composed = compose_document_email(
            document, brand, config=ComposeConfig(settings.secret(), settings.reply_domain),
            message_id=f"<preview@{settings.reply_domain}>",
        )  # fmt: skip
    except ComposeError as exc:
        abort(422, description=f"Cannot compose the email: {exc}")
    message = message_from_bytes(composed.raw, policy=policy.default)
    html_part = message.get_body(("html",))
    html = html_part.get_content() if html_part is not None else ""
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    )
    response.headers["X-Email-Subject"] = str(message["Subject"])
    return response
