#!/usr/bin/env python3
"""Regenerate docs/screenshot.png: the results page for a query on seeds/, in headless Chromium.

    .venv/bin/python scripts/screenshot.py [--query Q] [--out docs/screenshot.png] [--dark]

Indexes seeds/ into a temporary directory, serves it with waitress on a free loopback port, and
photographs the page as a reader sees it (JavaScript on, light scheme unless --dark).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from searchd.config import Config
from searchd.folder import FileRules
from searchd.engines.whoosh import WhooshEngine
from searchd.sync import index_once
from searchd.web import create_app, serving

REPO = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--query", default="prices OR heat OR battery OR library OR russia")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshot.png")
    parser.add_argument("--dark", action="store_true")
    parser.add_argument("--width", type=int, default=1100)
    parser.add_argument("--height", type=int, default=760)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="searchd-shot-") as tmp:
        index_dir = Path(tmp) / "index"
        index_once(WhooshEngine(index_dir), REPO / "seeds", FileRules(), 10 * 1024 * 1024)
        app = create_app(Config(folder=REPO / "seeds", index_dir=index_dir))
        with serving(app, threads=2) as base, sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": options.width, "height": options.height},
                                    color_scheme="dark" if options.dark else "light")
            page.goto(f"{base}/")
            page.fill("#q", options.query)
            page.press("#q", "Enter")
            page.wait_for_selector(".hit mark")
            page.locator("a.hit-link").first.focus()  # show the keyboard selection
            options.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(options.out))
            browser.close()
    print(f"wrote {options.out}")


if __name__ == "__main__":
    main()
