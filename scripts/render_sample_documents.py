"""Regenerate ``docs/receipts/*.png``: the first page of one issued document per jurisdiction.

Run from the repository root::

    .venv/bin/python scripts/render_sample_documents.py [--out docs/receipts] [--pdf]

Each case of ``tests/document_world.py`` (the fixtures the PDF tests check:
DE domestic, FR->DE reverse charge, ES->IT OSS, UK, AU, NZ, US no tax) is
issued through the real path — a throwaway SQLite database migrated to
head, ``issue_for_payment`` numbering, taxing and rendering — and the first
page is rasterised with pypdfium2 (a dev dependency) at 110 dpi.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from billbox.db import make_engine, session_factory  # noqa: E402
from billbox.documents.issue import DocumentConfig, issue_for_payment  # noqa: E402
from billbox.migrate import upgrade  # noqa: E402
from tests.document_world import CASES, make_world  # noqa: E402

DPI = 110


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "receipts")
    parser.add_argument("--pdf", action="store_true", help="also keep the PDFs next to the PNGs")
    args = parser.parse_args(argv)
    import pypdfium2 as pdfium

    args.out.mkdir(parents=True, exist_ok=True)
    config = DocumentConfig(public_url="https://billing.example.com")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'samples.db'}"
        upgrade(url)
        engine = make_engine(url)
        factory = session_factory(engine)
        for key, case in CASES.items():
            with factory() as session:
                world = make_world(session, case)
                document = issue_for_payment(session, world.payment.id, config)
                session.commit()
            assert document is not None and document.pdf is not None
            if args.pdf:
                (args.out / f"{key}.pdf").write_bytes(document.pdf)
            pdf = pdfium.PdfDocument(document.pdf)
            image = pdf[0].render(scale=DPI / 72).to_pil()
            target = args.out / f"{key}.png"
            image.save(target, optimize=True)
            pdf.close()
            print(f"{target.relative_to(ROOT)}  {document.title} {document.number}")
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
