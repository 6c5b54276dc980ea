"""The small self-contained HTML pages of the public links (email confirmation, unsubscribe).

A link in a mail is fetched by scanners and previews: its ``GET`` shows a page
with a button and changes nothing; the button ``POST``\\ s.  The page needs
nothing from elsewhere: no script, no external asset, no referrer sent, not
framed, not indexed.
"""

from __future__ import annotations

import html

from fastapi.responses import HTMLResponse

__all__ = ["HEADERS", "page"]

#: The headers of every such page.
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
}
_STYLE = ("body{font-family:system-ui,sans-serif;max-width:32em;margin:4em auto;padding:0 1em;"
          "line-height:1.5}button{font-size:1.1em;padding:.5em 1.5em}")


def page(title: str, text: str, *, button: str | None = None,
         fields: dict[str, str] | None = None, status: int = 200) -> HTMLResponse:
    """A page with a heading, one paragraph and, when ``button`` names one, a form that
    posts back to the same address.

    Args:
        title: the page's title and heading (escaped).
        text: the paragraph (escaped).
        button: the submit button's label; None for no form.
        fields: hidden form fields (name -> value, escaped).
        status: the HTTP status.
    """
    form = ""
    if button is not None:
        hidden = "".join(f'<input type="hidden" name="{html.escape(name)}" '
                         f'value="{html.escape(value)}">'
                         for name, value in (fields or {}).items())
        form = (f'<form method="post">{hidden}<button type="submit">'
                f"{html.escape(button)}</button></form>")
    body = (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f'<meta name="robots" content="noindex"><title>{html.escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p>{html.escape(text)}</p>{form}</body></html>")
    return HTMLResponse(body, status_code=status, headers=HEADERS)
