"""QR codes of the UI's links: as text for a terminal, as inline SVG for the host page."""

from __future__ import annotations

import io


def terminal_qr(data: str) -> str:
    """Two modules a character (half blocks), light quiet zone: scans off a dark or
    light terminal alike."""
    import segno  # on first use: a process that shows no QR code never loads it

    out = io.StringIO()
    segno.make(data, error="m").terminal(out=out, compact=True, border=2)
    return out.getvalue()


def svg_qr(data: str, *, label: str) -> str:
    """An ``<svg>`` element to put in a page as is (no XML declaration)."""
    import segno

    out = io.BytesIO()
    segno.make(data, error="m").save(
        out,
        kind="svg",
        scale=5,
        border=3,
        xmldecl=False,
        svgns=True,
        omitsize=True,  # a viewBox only: the page sizes it
        title=label,
        svgclass="qr",
        lineclass=None,
        dark="#000",
        light="#fff",
    )
    return out.getvalue().decode()
