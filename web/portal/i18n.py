"""The billing pages' words in English, Spanish, German and French.

A small catalogue in code rather than gettext files: the pages have few
strings, and a missing translation falls back to English visibly in tests.
"""

from __future__ import annotations

LANGUAGES = ("en", "es", "de", "fr")

CATALOGUE: dict[str, dict[str, str]] = {
    "Billing": {"es": "Facturación", "de": "Abrechnung", "fr": "Facturation"},
    "Payments": {"es": "Pagos", "de": "Zahlungen", "fr": "Paiements"},
    "Documents": {"es": "Documentos", "de": "Dokumente", "fr": "Documents"},
    "Subscriptions": {"es": "Suscripciones", "de": "Abonnements", "fr": "Abonnements"},
    "Open invoices": {"es": "Facturas pendientes", "de": "Offene Rechnungen",
                      "fr": "Factures ouvertes"},
    "Pay now": {"es": "Pagar ahora", "de": "Jetzt bezahlen", "fr": "Payer maintenant"},
    "Download PDF": {"es": "Descargar PDF", "de": "PDF herunterladen", "fr": "Télécharger le PDF"},
    "Date": {"es": "Fecha", "de": "Datum", "fr": "Date"},
    "Description": {"es": "Descripción", "de": "Beschreibung", "fr": "Description"},
    "Amount": {"es": "Importe", "de": "Betrag", "fr": "Montant"},
    "Status": {"es": "Estado", "de": "Status", "fr": "Statut"},
    "Number": {"es": "Número", "de": "Nummer", "fr": "Numéro"},
    "Plan": {"es": "Plan", "de": "Tarif", "fr": "Formule"},
    "Next charge": {"es": "Próximo cargo", "de": "Nächste Abbuchung", "fr": "Prochain prélèvement"},
    "Ends at period end": {"es": "Termina al final del periodo", "de": "Endet zum Periodenende",
                           "fr": "Se termine à la fin de la période"},
    "Cancel subscription": {"es": "Cancelar la suscripción", "de": "Abonnement kündigen",
                            "fr": "Résilier l'abonnement"},
    "Your subscription": {"es": "Su suscripción", "de": "Ihr Abonnement", "fr": "Votre abonnement"},
    "stays active until": {"es": "sigue activa hasta el", "de": "bleibt aktiv bis zum",
                           "fr": "reste actif jusqu'au"},
    "and then ends. You will not be charged again.": {
        "es": "y después termina. No se le volverá a cobrar.",
        "de": "und endet dann. Es wird nichts mehr abgebucht.",
        "fr": "puis prend fin. Vous ne serez plus prélevé.",
    },
    "Yes, cancel at the end of the period": {"es": "Sí, cancelar al final del periodo",
                                             "de": "Ja, zum Ende des Zeitraums kündigen",
                                             "fr": "Oui, résilier à la fin de la période"},
    "Keep my subscription": {"es": "Mantener mi suscripción", "de": "Abonnement behalten",
                             "fr": "Garder mon abonnement"},
    "Manage your PayPal automatic payments": {
        "es": "Gestionar sus pagos automáticos en PayPal",
        "de": "Ihre automatischen PayPal-Zahlungen verwalten",
        "fr": "Gérer vos paiements automatiques PayPal",
    },
    "Update card": {"es": "Cambiar tarjeta", "de": "Karte ändern", "fr": "Changer de carte"},
    "Card": {"es": "Tarjeta", "de": "Karte", "fr": "Carte"},
    "Save card": {"es": "Guardar tarjeta", "de": "Karte speichern", "fr": "Enregistrer la carte"},
    "Your new card is saved and will be used for the next payments.": {
        "es": "Su nueva tarjeta está guardada y se usará en los próximos pagos.",
        "de": "Ihre neue Karte ist gespeichert und wird für die nächsten Zahlungen verwendet.",
        "fr": "Votre nouvelle carte est enregistrée et servira aux prochains paiements.",
    },
    "The card form needs JavaScript (it runs on Stripe, so the card number never reaches us).": {
        "es": "El formulario de tarjeta necesita JavaScript (funciona en Stripe: el número "
              "nunca nos llega).",
        "de": "Das Kartenformular braucht JavaScript (es läuft bei Stripe; die Kartennummer "
              "erreicht uns nie).",
        "fr": "Le formulaire de carte nécessite JavaScript (il fonctionne chez Stripe : le numéro "
              "ne nous parvient jamais).",
    },
    "Tax details": {"es": "Datos fiscales", "de": "Steuerdaten", "fr": "Informations fiscales"},
    "Name": {"es": "Nombre", "de": "Name", "fr": "Nom"},
    "Address": {"es": "Dirección", "de": "Adresse", "fr": "Adresse"},
    "Country": {"es": "País", "de": "Land", "fr": "Pays"},
    "VAT/GST number": {"es": "NIF-IVA / número GST", "de": "USt-IdNr. / GST-Nummer",
                       "fr": "Numéro de TVA / GST"},
    "Save": {"es": "Guardar", "de": "Speichern", "fr": "Enregistrer"},
    "Saved. Future documents use these details; issued documents do not change.": {
        "es": "Guardado. Los próximos documentos usarán estos datos; los ya emitidos no cambian.",
        "de": "Gespeichert. Künftige Dokumente verwenden diese Angaben; ausgestellte bleiben "
              "unverändert.",
        "fr": "Enregistré. Les prochains documents utiliseront ces informations ; les documents "
              "émis ne changent pas.",
    },
    "Ask a billing question": {"es": "Hacer una consulta de facturación",
                               "de": "Eine Frage zur Abrechnung stellen",
                               "fr": "Poser une question sur la facturation"},
    "Subject": {"es": "Asunto", "de": "Betreff", "fr": "Objet"},
    "Your question": {"es": "Su pregunta", "de": "Ihre Frage", "fr": "Votre question"},
    "Send": {"es": "Enviar", "de": "Senden", "fr": "Envoyer"},
    "Thank you. We received your question and will answer by email.": {
        "es": "Gracias. Hemos recibido su pregunta y le responderemos por correo electrónico.",
        "de": "Danke. Wir haben Ihre Frage erhalten und antworten per E-Mail.",
        "fr": "Merci. Nous avons bien reçu votre question et vous répondrons par e-mail.",
    },
    "Nothing yet.": {"es": "Nada todavía.", "de": "Noch nichts.", "fr": "Rien pour l'instant."},
    "paid": {"es": "pagado", "de": "bezahlt", "fr": "payé"},
    "refunded": {"es": "reembolsado", "de": "erstattet", "fr": "remboursé"},
    "partially refunded": {"es": "reembolsado en parte", "de": "teilweise erstattet",
                           "fr": "remboursé en partie"},
    "failed": {"es": "fallido", "de": "fehlgeschlagen", "fr": "échoué"},
    "disputed": {"es": "en disputa", "de": "angefochten", "fr": "contesté"},
    "pending": {"es": "pendiente", "de": "ausstehend", "fr": "en attente"},
    "receipt": {"es": "recibo", "de": "Quittung", "fr": "reçu"},
    "invoice": {"es": "factura", "de": "Rechnung", "fr": "facture"},
    "credit note": {"es": "nota de crédito", "de": "Gutschrift", "fr": "avoir"},
    "Open the link in your latest receipt email to see your billing details.": {
        "es": "Abra el enlace de su último recibo por correo para ver sus datos de facturación.",
        "de": "Öffnen Sie den Link in Ihrer letzten Quittung per E-Mail, um Ihre "
              "Abrechnungsdaten zu sehen.",
        "fr": "Ouvrez le lien de votre dernier reçu reçu par e-mail pour voir vos informations "
              "de facturation.",
    },
}  # fmt: skip


def translate(text: str, language: str) -> str:
    if language == "en":
        return text
    return CATALOGUE.get(text, {}).get(language, text)


def language_of(locale: str | None) -> str:
    """``de_AT`` → ``de``; anything unsupported → ``en``."""
    base = (locale or "en").replace("-", "_").split("_")[0].lower()
    return base if base in LANGUAGES else "en"
