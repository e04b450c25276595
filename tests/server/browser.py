"""A real browser for the page tests: Debian's chromium driven by Playwright.

``chromium`` is one browser per test module (skipped when ``/usr/bin/chromium`` is missing:
``scripts/test`` installs it), launched headless with no network of its own (no updates, no
sync, no QUIC). ``screenshot`` saves a page under ``$STRIDECUE_TEST_OUTPUT/screenshots``, or
``<repo>/test-output/screenshots``. The formatting helpers repeat the pages' own
(``static/js/format.js``) so that tests compare the screen with the published values exactly.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from stridecue.bench.e2e import CHROMIUM, CHROMIUM_ARGS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """A headless chromium (a Playwright ``Browser``) for the module's tests."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (scripts/test installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


def screenshot_dir() -> Path:
    base = os.environ.get("STRIDECUE_TEST_OUTPUT")
    directory = (Path(base) if base else REPO / "test-output") / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def screenshot(page: Any, name: str, *, full_page: bool = True) -> Path:
    path = screenshot_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


class Console:
    """A page's console errors and uncaught exceptions (a CSP violation is one)."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(message.text)


def fixed(value: float | None, digits: int = 0) -> str:
    """JavaScript's ``value.toFixed(digits)`` (ties away from zero on the exact binary value),
    or the pages' dash for an unknown value."""
    if value is None or not math.isfinite(value):
        return "–"
    return str(Decimal(value).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def signed(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    text = fixed(abs(value), digits)
    if float(text) == 0:
        return text
    return ("+" if value > 0 else "−") + text


def countdown(seconds: float) -> str:
    whole = math.ceil(max(0.0, seconds) - 1e-9)
    return f"{whole // 60}:{whole % 60:02d}"


def state_text(state: str, rep: int, reps: int | None, remaining_s: float | None) -> str:
    """What ``stateText`` in format.js shows for a session message."""
    of = (lambda k: f"rep {k} of {reps}") if reps else (lambda k: f"rep {k}")
    match state:
        case "warmup":
            return "warm-up"
        case "get_ready":
            return f"get ready: {of(rep + 1)}"
        case "rep":
            return of(rep)
        case "recovery":
            return "recovery" if remaining_s is None else f"recovery {countdown(remaining_s)}"
        case "cooldown":
            return "cool-down"
        case _:
            return state


def rep_counter(state: str, rep: int, reps: int | None) -> str:
    """What ``repCounter`` in format.js shows."""
    of = f" of {reps}" if reps else ""
    match state:
        case "warmup":
            return f"{reps} reps after the warm-up" if reps else "warm-up"
        case "get_ready":
            return f"Rep {rep + 1}{of}"
        case "rep":
            return f"Rep {rep}{of}"
        case "recovery":
            return f"Rep {rep}{of} done"
        case _:
            if reps:
                return f"{rep} of {reps} reps done"
            return "1 rep done" if rep == 1 else f"{rep} reps done"
