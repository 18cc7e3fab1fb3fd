"""Tax determination, tax ids and EN 16931 totals: pure functions, no database."""

from __future__ import annotations

import io
import json
import tokenize
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from pathlib import Path

import pytest
from stdnum.au import abn as stdnum_abn
from stdnum.eu import vat as stdnum_eu_vat
from stdnum.gb import vat as stdnum_gb_vat
from stdnum.nz import ird as stdnum_ird

import billbox.tax
import billbox.taxids
from billbox.errors import BillboxError
from billbox.models.enums import TaxScheme
from billbox.tax import (
    Buyer,
    Category,
    Line,
    Registration,
    Seller,
    TaxDecision,
    TaxError,
    Treatment,
    compute_totals,
    determine,
    load_rates,
)
from billbox.taxids import InvalidTaxId, validate_eu_vat, validate_tax_id

# Real numbers with correct check digits (each re-checked with stdnum below).
DE_VAT = "DE136695976"
FR_VAT = "FR40303265045"
ES_VAT = "ESB58378431"
IT_VAT = "IT00743110157"
GB_VAT = "GB980780684"
AU_ABN = "83914571673"
AU_ABN_2 = "51824753556"
NZ_IRD = "49091850"
NZ_IRD_2 = "136410132"

REVERSE_CHARGE_NOTE = (
    "Reverse charge: VAT to be accounted for by the recipient, "
    "Article 196 Council Directive 2006/112/EC"
)

DE_SELLER = Seller("DE", (Registration(TaxScheme.EU_VAT, "DE", DE_VAT),))
FR_SELLER = Seller("FR", (Registration(TaxScheme.EU_VAT, "FR", FR_VAT),))
ES_SELLER_OSS = Seller(
    "ES",
    (
        Registration(TaxScheme.EU_VAT, "ES", ES_VAT),
        Registration(TaxScheme.EU_OSS, "ES", ES_VAT),
    ),
)
GB_SELLER = Seller("GB", (Registration(TaxScheme.GB_VAT, "GB", GB_VAT),))
AU_SELLER = Seller("AU", (Registration(TaxScheme.AU_GST, "AU", "83 914 571 673"),))
NZ_SELLER = Seller("NZ", (Registration(TaxScheme.NZ_GST, "NZ", "49-091-850"),))
US_SELLER = Seller("US", ())


def test_the_test_numbers_pass_stdnum_checksums():
    """Every id used below is valid for stdnum itself, so a failure is ours, not the data's."""
    for number in (DE_VAT, FR_VAT, ES_VAT, IT_VAT):
        assert stdnum_eu_vat.is_valid(number), number
    assert stdnum_gb_vat.is_valid(GB_VAT)
    assert stdnum_abn.is_valid(AU_ABN) and stdnum_abn.is_valid(AU_ABN_2)
    assert stdnum_ird.is_valid(NZ_IRD) and stdnum_ird.is_valid(NZ_IRD_2)
    assert not stdnum_eu_vat.is_valid("DE136695977")


# --- rounding ---------------------------------------------------------------


def test_fifty_lines_of_241_67_gbp_at_20_percent_are_taxed_once_on_their_sum():
    """EN 16931: tax is rounded once per rate on the sum of nets: 2,416.70, not 2,416.50."""
    decision = determine(GB_SELLER, Buyer("GB"))
    lines = [Line(f"Seat {i}", 1, 24167) for i in range(50)]

    totals = compute_totals(lines, decision, "GBP")

    per_line_rounding = 50 * int(
        (Decimal(24167) * Decimal("0.2")).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    )
    assert per_line_rounding == 241650  # what the wrong method would give
    assert totals.subtotal == 1208350
    assert totals.tax_total == 241670
    assert totals.total == 1450020
    assert len(totals.tax_lines) == 1
    tax_line = totals.tax_lines[0]
    assert (tax_line.jurisdiction, tax_line.category, tax_line.rate) == ("GB", "S", Decimal(20))
    assert (tax_line.taxable_amount, tax_line.tax_amount) == (1208350, 241670)
    assert totals.major(totals.tax_total) == Decimal("2416.70")
    assert str(totals.major(totals.tax_total)) == "2416.70"


def test_zero_decimal_jpy_totals_round_half_up_to_whole_yen():
    """JPY has no minor unit: 19 % of ¥150 is ¥28.5, which rounds half up to ¥29 (not even ¥28)."""
    decision = determine(DE_SELLER, Buyer("DE"))
    totals = compute_totals([Line("Sticker", 3, 50)], decision, "jpy")

    assert totals.currency == "JPY"
    assert (totals.subtotal, totals.tax_total, totals.total) == (150, 29, 179)
    assert totals.major(totals.total) == Decimal(179)
    assert str(totals.major(totals.total)) == "179"


def test_three_decimal_kwd_totals_are_kept_in_fils():
    """KWD has three decimals: 19 % of 0.050 KWD is 9.5 fils, rounded half up to 0.010 KWD."""
    decision = determine(DE_SELLER, Buyer("DE"))
    totals = compute_totals([Line("Sample", 2, 25), Line("Plan", 1, 1234)], decision, "KWD")

    assert totals.subtotal == 1284
    # 1284 * 0.19 = 243.96 fils -> 244
    assert totals.tax_total == 244
    assert totals.total == 1528
    assert str(totals.major(totals.total)) == "1.528"
    tiny = compute_totals([Line("Sample", 2, 25)], decision, "KWD")
    assert (tiny.tax_total, str(tiny.major(tiny.total))) == (10, "0.060")


def test_credit_note_amounts_round_symmetrically():
    """A negative line rounds half away from zero, so a credit note mirrors its invoice."""
    decision = determine(DE_SELLER, Buyer("DE"))
    invoice = compute_totals([Line("Sticker", 3, 50)], decision, "JPY")
    credit = compute_totals([Line("Sticker", -3, 50)], decision, "JPY")
    assert credit.tax_total == -invoice.tax_total == -29


def test_lines_of_several_rates_get_one_tax_line_each_and_zero_rates_no_tax():
    """A reverse-charge document has a single AE tax line with zero tax."""
    decision = determine(FR_SELLER, Buyer("DE", DE_VAT))
    totals = compute_totals([Line("A", 2, 1000), Line("B", 1, 333)], decision, "EUR")
    assert [(t.category, t.rate, t.taxable_amount, t.tax_amount) for t in totals.tax_lines] == [
        ("AE", Decimal(0), 2333, 0)
    ]
    assert totals.total == totals.subtotal == 2333


# --- no floats --------------------------------------------------------------


def test_no_float_is_used_by_the_tax_code_or_its_data():
    """No float literal or float() call in the sources, rates are exact strings, outputs exact."""
    for module in (billbox.tax, billbox.taxids):
        source = Path(str(module.__file__)).read_text("utf-8")
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.NUMBER:
                assert not any(c in token.string.lower() for c in ".ej"), token
            if token.type == tokenize.NAME:
                assert token.string != "float", (module.__name__, token.start)

    raw = resources.files("billbox.data").joinpath("tax_rates.json").read_text("utf-8")
    for entry in json.loads(raw)["countries"].values():
        assert isinstance(entry["standard"], str)

    decision = determine(Seller("FI", (Registration("eu_vat", "FI", "FI20774740"),)), Buyer("FI"))
    assert type(decision.rate) is Decimal and decision.rate == Decimal("25.5")
    totals = compute_totals([Line("x", 3, 333)], decision, "EUR")
    for amount in (totals.subtotal, totals.tax_total, totals.total):
        assert type(amount) is int
    for tax_line in totals.tax_lines:
        assert type(tax_line.tax_amount) is int and type(tax_line.rate) is Decimal
    assert totals.tax_total == 255  # 999 * 0.255 = 254.745 -> 255

    with pytest.raises(TypeError):
        Line("x", 1, 9.99)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Line("x", 1.0, 999)  # type: ignore[arg-type]


# --- the seven jurisdictions ------------------------------------------------


def test_german_seller_to_german_consumer_is_domestic_vat_at_19_percent():
    """DE -> DE consumer: domestic, S, 19 %, seller's VAT number on the invoice."""
    decision = determine(DE_SELLER, Buyer("DE"))
    assert decision == TaxDecision(
        treatment=Treatment.DOMESTIC,
        jurisdiction="DE",
        rate=Decimal(19),
        category=Category.STANDARD,
        document_title="Invoice",
        legal_note=None,
        seller_tax_number=DE_VAT,
        seller_tax_label="VAT",
        buyer_tax_number=None,
    )


def test_french_seller_to_german_business_with_valid_vat_id_is_reverse_charged():
    """FR -> DE business with a valid VAT id: reverse charge, 0 %, AE, Article 196 note."""
    decision = determine(FR_SELLER, Buyer("DE", "de 136 695 976"))
    assert decision.treatment == "reverse_charge"
    assert decision.category == "AE"
    assert decision.rate == 0
    assert decision.jurisdiction == "DE"
    assert decision.legal_note == REVERSE_CHARGE_NOTE
    assert decision.seller_tax_number == FR_VAT
    assert decision.buyer_tax_number == DE_VAT


def test_spanish_seller_with_oss_to_italian_consumer_charges_italian_vat():
    """ES (OSS) -> IT consumer: the buyer's country rate, 22 %, declared through OSS."""
    decision = determine(ES_SELLER_OSS, Buyer("IT"))
    assert decision.treatment == Treatment.OSS
    assert (decision.jurisdiction, decision.rate, decision.category) == ("IT", Decimal(22), "S")
    assert decision.seller_tax_number == ES_VAT
    assert decision.legal_note is None


def test_uk_seller_to_uk_buyer_charges_20_percent_vat():
    """GB -> GB: domestic UK VAT at 20 % with the GB-prefixed VAT number."""
    decision = determine(GB_SELLER, Buyer("GB"))
    assert (decision.treatment, decision.jurisdiction, decision.rate) == (
        "domestic",
        "GB",
        Decimal(20),
    )
    assert decision.category == "S"
    assert decision.document_title == "Invoice"
    assert decision.seller_tax_number == GB_VAT


def test_australian_seller_to_australian_buyer_issues_a_tax_invoice_with_the_abn():
    """AU -> AU: 10 % GST, titled "Tax invoice", the seller's ABN shown (as ABN)."""
    decision = determine(AU_SELLER, Buyer("AU", "51 824 753 556"))
    assert (decision.treatment, decision.jurisdiction, decision.rate) == (
        "domestic",
        "AU",
        Decimal(10),
    )
    assert decision.document_title == "Tax invoice"
    assert decision.seller_tax_label == "ABN"
    assert decision.seller_tax_number == AU_ABN
    assert decision.buyer_tax_number == AU_ABN_2


def test_new_zealand_seller_to_new_zealand_buyer_charges_15_percent_gst():
    """NZ -> NZ: 15 % GST, titled "Tax invoice", GST (IRD) number shown."""
    decision = determine(NZ_SELLER, Buyer("NZ"))
    assert (decision.treatment, decision.jurisdiction, decision.rate) == (
        "domestic",
        "NZ",
        Decimal(15),
    )
    assert decision.document_title == "Tax invoice"
    assert (decision.seller_tax_label, decision.seller_tax_number) == ("GST", NZ_IRD)


def test_us_seller_without_registrations_charges_no_tax():
    """No registration applies: no tax, category O, no seller number, plain "Invoice"."""
    for buyer in (Buyer("US"), Buyer("DE"), Buyer("DE", DE_VAT), Buyer("AU"), Buyer(None)):
        decision = determine(US_SELLER, buyer)
        assert decision.treatment == Treatment.NO_TAX, buyer
        assert (decision.rate, decision.category) == (Decimal(0), "O")
        assert decision.seller_tax_number is None
        assert decision.document_title == "Invoice"
        assert decision.legal_note is None


# --- simplifications and exports ------------------------------------------


def test_eu_seller_without_oss_charges_its_own_rate_to_consumers_abroad():
    """Below the EUR 10,000 threshold (not tracked), ES -> IT consumer pays Spanish 21 %."""
    seller = Seller("ES", (Registration("eu_vat", "ES", ES_VAT),))
    decision = determine(seller, Buyer("IT"))
    assert (decision.treatment, decision.jurisdiction, decision.rate) == (
        "origin",
        "ES",
        Decimal(21),
    )


def test_sales_outside_the_sellers_tax_area_are_outside_scope_or_exports():
    """EU and UK sellers abroad: outside scope (O); AU and NZ sellers abroad: zero-rated (Z)."""
    eu = determine(DE_SELLER, Buyer("US"))
    assert (eu.treatment, eu.category, eu.rate) == ("outside_scope", "O", 0)
    assert eu.legal_note and "Article" in eu.legal_note
    uk = determine(GB_SELLER, Buyer("FR"))
    assert (uk.treatment, uk.category, uk.jurisdiction) == ("outside_scope", "O", "GB")
    assert uk.legal_note and "UK VAT" in uk.legal_note
    au = determine(AU_SELLER, Buyer("NZ"))
    assert (au.treatment, au.category, au.document_title) == ("export", "Z", "Invoice")
    nz = determine(NZ_SELLER, Buyer("AU"))
    assert (nz.treatment, nz.category) == ("export", "Z")


def test_buyer_without_country_buys_in_the_sellers_country():
    """A walk-in sale without a country is taxed where the seller is."""
    assert determine(DE_SELLER, Buyer()).treatment == "domestic"
    assert determine(DE_SELLER, Buyer(None, IT_VAT)).treatment == "reverse_charge"


# --- tax ids ----------------------------------------------------------------


def test_an_invalid_buyer_vat_id_raises_instead_of_falling_back_to_b2c():
    """The caller must decide what to do; a business never becomes a consumer silently."""
    with pytest.raises(InvalidTaxId) as caught:
        determine(FR_SELLER, Buyer("DE", "DE123"))
    assert isinstance(caught.value, BillboxError)
    assert str(caught.value).startswith("DE123 is not a valid German VAT number:")
    assert caught.value.value == "DE123"


def test_a_well_formed_vat_id_with_a_bad_check_digit_is_refused():
    """DE136695977 has the right shape but the wrong check digit."""
    with pytest.raises(
        InvalidTaxId,
        match=r"^DE136695977 is not a valid German VAT number: "
        r"checksum does not match$",
    ):
        validate_tax_id("DE136695977", "DE")
    with pytest.raises(InvalidTaxId, match="checksum does not match"):
        determine(FR_SELLER, Buyer("DE", "DE136695977"))


def test_tax_ids_are_normalised_and_checked_per_country():
    """Spaces and dots go, Greece is EL, the prefix is added, other countries' ids refused."""
    assert validate_tax_id("136 695 976", "DE") == DE_VAT
    assert validate_tax_id("gb 980 7806 84", "GB") == GB_VAT
    assert validate_tax_id("49-091-850", "NZ") == NZ_IRD
    assert validate_tax_id("83 914 571 673", "AU") == AU_ABN
    assert validate_eu_vat("GR094259216") == "EL094259216"
    with pytest.raises(InvalidTaxId, match="French VAT number, but the country given is DE"):
        validate_tax_id(FR_VAT, "DE")
    with pytest.raises(InvalidTaxId, match="not a valid Australian Business Number"):
        validate_tax_id("83914571674", "AU")
    with pytest.raises(InvalidTaxId, match="cannot check tax ids from US"):
        validate_tax_id("12-3456789", "US")


def test_unverifiable_buyer_ids_are_printed_but_never_change_the_tax():
    """A US EIN cannot be checked: kept as given, the sale stays outside scope."""
    decision = determine(DE_SELLER, Buyer("US", " 12-3456789 "))
    assert decision.buyer_tax_number == "12-3456789"
    assert decision.treatment == "outside_scope"


def test_an_invalid_seller_registration_number_is_refused():
    """A brand configured with a wrong VAT number must not issue documents with it."""
    seller = Seller("DE", (Registration("eu_vat", "DE", "DE136695977"),))
    with pytest.raises(InvalidTaxId, match="checksum does not match"):
        determine(seller, Buyer("DE"))
    with pytest.raises(TaxError, match="unknown tax scheme"):
        determine(Seller("DE", (Registration("us_sales_tax", "US", "x"),)), Buyer("DE"))


# --- the rate table ----------------------------------------------------------


def test_rate_table_has_every_member_state_and_names_its_source_and_date():
    """27 EU states plus GB, AU, NZ, sourced from the Commission as of 2026-01-01."""
    table = load_rates()
    assert set(billbox.taxids.EU_MEMBER_STATES) | {"GB", "AU", "NZ"} <= set(table.standard)
    assert len(billbox.taxids.EU_MEMBER_STATES) == 27
    assert "European Commission" in table.source
    assert "VAT rates applied in the Member States" in table.source
    assert table.as_of == "2026-01-01"
    assert table.notes["reverse_charge"] == REVERSE_CHARGE_NOTE
    expected = {"FI": "25.5", "RO": "21", "SK": "23", "EE": "24", "DE": "19", "GB": "20"}
    for country, rate in expected.items():
        assert table.standard[country] == Decimal(rate), country
    raw = json.loads(resources.files("billbox.data").joinpath("tax_rates.json").read_text())
    assert "checked" in raw["warning"] and "production" in raw["warning"]
