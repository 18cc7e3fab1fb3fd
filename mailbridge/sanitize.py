"""Make a customer's HTML mail safe to show to an agent, with nh3 (ammonia).

The HTML comes from anyone who can send us mail, and it is shown inside the
admin inbox, next to buttons that refund money. So the allow-list is small and
every choice errs towards dropping:

* Formatting tags only (paragraphs, lists, emphasis, quotes, code, tables,
  links). Scripts, styles, frames, forms, objects, SVG and MathML are removed
  *with their content*; any other unknown tag is removed but its text kept.
* No ``style``, ``class`` or ``id`` attribute: CSS can load remote resources
  (``background:url(…)``) and so report that an agent read the mail, and
  ``id``/``class`` can clash with the admin page's own.
* Links keep only absolute ``http``, ``https`` and ``mailto`` targets and get
  ``rel="noopener noreferrer nofollow"``. Relative links are dropped: in our
  page they would point at our own admin URLs.
* At most ``MAX_TAGS`` tags: the HTML5 tree builder is quadratic in nesting
  depth (40,000 nested ``<div>`` take 8 s in nh3), so a longer document is cut
  at its ``MAX_TAGS``-th tag. No real message comes near; the raw message
  stays stored whole.
* No images at all. A remote image is a read receipt for the sender and a
  ``data:`` image is an attack surface; a ``cid:`` image refers to an
  attachment, which the pipeline keeps and lists with the ticket, so dropping
  the ``<img>`` loses nothing the agent cannot open.
"""

from __future__ import annotations

import nh3

ALLOWED_TAGS = frozenset(
    {
        "p", "br", "div", "span", "b", "strong", "i", "em", "u", "s", "sub", "sup",
        "ul", "ol", "li", "blockquote", "pre", "code", "hr",
        "h1", "h2", "h3", "h4", "h5", "h6",
        "table", "thead", "tbody", "tfoot", "tr", "td", "th", "caption",
        "a",
    }
)  # fmt: skip
# Removed together with everything inside them, not just unwrapped.
DROPPED_WITH_CONTENT = frozenset(
    {
        "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet",
        "form", "button", "select", "textarea", "svg", "math", "template", "noscript",
        "title", "head", "xmp", "noembed", "noframes",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "td": {"colspan", "rowspan"}, "th": {"colspan"}}
MAX_TAGS = 10_000
URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener noreferrer nofollow"


def _keep_attribute(tag: str, attribute: str, value: str) -> str | None:
    """Drop link targets that are not absolute http(s) or mailto URLs."""
    if attribute == "href":
        scheme, sep, _rest = value.strip().partition(":")
        if not sep or scheme.lower() not in URL_SCHEMES:
            return None
    return value


def sanitize_html(html: str) -> str:
    """Inert HTML for display: the allow-list above, nothing that runs or loads."""
    cut = -1
    for _ in range(MAX_TAGS + 1):
        cut = html.find("<", cut + 1)
        if cut < 0:
            break
    return nh3.clean(
        html if cut < 0 else html[:cut],
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=_keep_attribute,
        url_schemes=set(URL_SCHEMES),
        link_rel=LINK_REL,
        strip_comments=True,
    )
