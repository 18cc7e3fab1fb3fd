"""HTML to PDF with xhtml2pdf, which may read nothing but our templates and the media folder.

Two locks on the door, because xhtml2pdf fetches whatever the markup names
(``<img src>``, CSS ``url()``, ``@import``, ``@font-face``):

1. :meth:`PdfRenderer.link_callback` answers every reference xhtml2pdf
   resolves. It maps a relative path to a file inside ``templates/`` or
   the media folder, allows the ``data:`` URIs this module made itself (the
   brand logo), and refuses everything else: ``http(s)://``, ``file://``,
   other ``data:`` URIs, absolute paths, ``..`` escapes, symlinks out. A
   refused reference is logged and replaced by an inert empty ``data:``
   URI, because xhtml2pdf keeps the original URL when the callback returns
   nothing.
2. A :class:`~xhtml2pdf.config.resources.ResourceAccessPolicy` with remote
   access off and local reads confined to the same two directories covers
   the code paths that do not go through ``link_callback`` (fonts,
   backgrounds), so nothing reaches the network even if (1) had a gap.

Everything that does not change between documents is built once per
process: the Jinja environment (templates compiled on first use), the brand
CSS per colour pair, the logo re-encoded as a PNG ``data:`` URI per logo
digest, and the DejaVu TTFs (xhtml2pdf keeps a font it registered once).
The document text itself is escaped by Jinja's autoescape, so a customer
called ``<img src="http://…">`` is printed, not fetched.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import threading
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import jinja2

from billbox.errors import BillboxError
from billbox.logs import get_logger

if TYPE_CHECKING:
    from collections.abc import Sequence

    from billbox.models import Brand, Document, DocumentLine, DocumentTaxLine

__all__ = [
    "TEMPLATES_DIR",
    "PdfError",
    "PdfRenderer",
    "logo_data_uri",
    "render_document",
    "renderer",
]

log = get_logger("billbox.pdf")

TEMPLATES_DIR = (Path(__file__).resolve().parent.parent / "templates").resolve()
DOCUMENTS_DIR = TEMPLATES_DIR / "documents"
#: What a refused reference becomes: an empty resource xhtml2pdf skips quietly.
_INERT = "data:text/plain;base64,"
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
_MAX_LOGO_BYTES = 2 * 1024 * 1024
_LOGO_BOX = (600, 200)


class PdfError(BillboxError):
    """xhtml2pdf reported errors while converting a document."""


def safe_colour(value: str | None, default: str) -> str:
    """A ``#rrggbb`` colour or ``default``: brand colours go into CSS unescaped."""
    return value if value and _COLOUR.match(value) else default


@lru_cache(maxsize=64)
def logo_data_uri(logo: bytes) -> str | None:
    """The logo re-encoded as a PNG ``data:`` URI (at most 600x200), or None if not an image.

    Re-encoding with Pillow is the point: only raster pixels reach the PDF,
    never an SVG (which could reference other files or URLs) or a file
    that merely claims to be an image.
    """
    if not logo or len(logo) > _MAX_LOGO_BYTES:
        return None
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(logo)) as image:
            if image.format not in ("PNG", "JPEG", "GIF", "WEBP"):
                return None
            image.thumbnail(_LOGO_BOX)
            out = io.BytesIO()
            image.convert("RGBA").save(out, format="PNG")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        log.warning("logo_refused", reason="not a readable raster image")
        return None
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


class PdfRenderer:
    """Renders Jinja templates under ``templates/`` to PDF bytes; safe to share between threads.

    ``media_dir`` is the one other directory documents may read (e.g.
    ``var/media``); ``None`` allows templates only.
    """

    def __init__(self, media_dir: Path | None = None, templates_dir: Path = TEMPLATES_DIR) -> None:
        # xhtml2pdf (with reportlab) takes ~0.4 s to import: only processes that
        # render pay for it, not every worker and web process that imports us.
        from xhtml2pdf.config.resources import ResourceAccessPolicy

        self.templates_dir = templates_dir.resolve()
        self.media_dir = media_dir.resolve() if media_dir is not None else None
        roots = (self.media_dir,) if self.media_dir is not None else ()
        self.policy = ResourceAccessPolicy.server(
            base_dir=self.templates_dir,
            extra_roots=roots,
            allow_remote=False,
            allow_remote_pdf_backgrounds=False,
        )
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(self.templates_dir)),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            auto_reload=False,
            cache_size=64,
        )
        self._local = threading.local()

    # --- the gate ---------------------------------------------------------

    def _roots(self) -> tuple[Path, ...]:
        return (self.templates_dir,) + ((self.media_dir,) if self.media_dir else ())

    def resolve(self, uri: object, allowed_data: frozenset[str] = frozenset()) -> str | None:
        """The absolute path (or allowed ``data:`` URI) ``uri`` stands for, or None if refused.

        Relative paths are taken relative to ``templates/documents/``;
        ``media/…`` names a file in the media folder.
        """
        if not isinstance(uri, str) or not uri.strip():
            return None
        text = uri.strip()
        if text.startswith("data:"):
            return text if text in allowed_data else None
        parts = urlsplit(text)
        if parts.scheme or parts.netloc or parts.query or parts.fragment:
            return None
        path = unquote(parts.path)
        if path.startswith(("/", "\\")) or "\\" in path or "\x00" in path:
            return None
        pieces = Path(path).parts
        if not pieces or ".." in pieces:
            return None
        if pieces[0] == "media" and self.media_dir is not None:
            candidate = self.media_dir.joinpath(*pieces[1:])
        else:
            candidate = (self.templates_dir / "documents").joinpath(*pieces)
        try:
            real = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not real.is_file() or not any(real.is_relative_to(root) for root in self._roots()):
            return None
        return str(real)

    def link_callback(self, uri: object, _relative: object = None) -> str:
        """xhtml2pdf's hook: a safe target for ``uri``, or an inert one (logged)."""
        allowed: frozenset[str] = getattr(self._local, "allowed_data", frozenset())
        target = self.resolve(uri, allowed)
        if target is None:
            shown = str(uri)[:120]
            log.warning("pdf_reference_refused", uri=shown)
            self._local.refused = [*getattr(self._local, "refused", []), shown]
            return _INERT
        return target

    # --- rendering --------------------------------------------------------

    def render_html(self, template: str, context: Mapping[str, Any]) -> str:
        return self.env.get_template(template).render(**context)

    def html_to_pdf(self, html: str, allowed_data: frozenset[str] = frozenset()) -> bytes:
        """Convert ``html`` under the gate; PdfError if xhtml2pdf reports an error."""
        from xhtml2pdf import pisa

        self._local.allowed_data = allowed_data
        self._local.refused = []
        out = io.BytesIO()
        try:
            status = pisa.CreatePDF(
                html,
                dest=out,
                link_callback=self.link_callback,
                resource_policy=self.policy,
                path=str(self.templates_dir / "documents" / "document.html"),
                encoding="utf-8",
            )
        finally:
            self._local.allowed_data = frozenset()
        if status.err:
            raise PdfError(f"xhtml2pdf reported {status.err} error(s) converting the document")
        return out.getvalue()

    def refused(self) -> list[str]:
        """References refused during this thread's last conversion (for tests and logs)."""
        return list(getattr(self._local, "refused", []))

    def render(
        self,
        template: str,
        context: Mapping[str, Any],
        allowed_data: frozenset[str] = frozenset(),
    ) -> bytes:
        return self.html_to_pdf(self.render_html(template, context), allowed_data)


_RENDERERS: dict[Path | None, PdfRenderer] = {}
_RENDERERS_LOCK = threading.Lock()


def renderer(media_dir: Path | None = None) -> PdfRenderer:
    """The process-wide renderer for ``media_dir`` (built once, then reused)."""
    key = media_dir.resolve() if media_dir is not None else None
    with _RENDERERS_LOCK:
        found = _RENDERERS.get(key)
        if found is None:
            found = _RENDERERS[key] = PdfRenderer(key)
        return found


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def render_document(
    document: Document,
    lines: Sequence[DocumentLine],
    tax_lines: Sequence[DocumentTaxLine],
    brand: Brand,
    **options: Any,
) -> bytes:
    """The document's PDF; see :func:`billbox.documents.render.render_document`.

    Imported late: the document template's context lives with the documents,
    and they import this module for the engine.
    """
    from billbox.documents.render import render_document as render

    return render(document, lines, tax_lines, brand, **options)
