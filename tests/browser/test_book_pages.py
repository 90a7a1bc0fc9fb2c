"""Open every page of the built book in headless Chromium and check what a reader sees.

For each page: it loads over HTTP, its title is the chapter's, MathJax has
typeset its equations (``mjx-container`` elements), every image has loaded
(``naturalWidth > 0``) and chapters with figures show them. Then, at a
desktop width (1280 px) and a phone width (400 px), the page must read clean:

- no TeX left in the rendered text (a literal ``$``, ``$$`` or ``\\command``
  outside code and typeset math) and no MathJax error node;
- at 1280 px nothing in the article column scrolls sideways or reaches past
  its edge (code blocks, outputs, equations, tables); at 400 px the page is
  not wider than the screen;
- no error in the browser's console, no uncaught script error, and no
  request that fails (scripts, fonts, images, the favicon).

A full-page screenshot of every page at both widths is kept in
``_build/screenshots``. Every check is also run on the known-bad pages in
``fixtures/`` and must fail there, so that none of them can pass vacuously.
Finally every internal link of every page must resolve.
"""

import urllib.error
import urllib.parse
import urllib.request

import pytest

import page_checks

BOOK_TITLE = "convlab"

# (page, title of its first heading with the toc's number, least number of figures)
# The chapters are numbered, the appendices lettered, the instructors' page is not numbered.
CHAPTERS = [
    ("book/intro.html", "Convolutional networks, from loops to kernels", 0),
    ("book/01-convolution.html", "1. Convolution", 3),
    ("book/02-max-pooling.html", "2. Max pooling", 0),
    ("book/03-fast-layers.html", "3. Fast layers", 0),
    ("book/04-sandwich-layers.html", "4. Sandwich layers", 0),
    ("book/05-three-layer-convnet.html", "5. A three-layer ConvNet", 2),
    ("book/06-spatial-batchnorm.html", "6. Spatial batch normalization", 0),
    ("book/07-experiments.html", "7. Experiments", 1),
    ("book/08-convolution-family.html", "8. The convolution family", 5),
    ("book/09-residual-networks.html", "9. Going deeper: residual networks", 3),
]
APPENDICES = [
    ("book/performance-notes.html", "A. Performance notes", 0),
    ("book/sweeps.html", "B. Sweeps: from one laptop to a cluster", 0),
    ("book/checking.html", "C. How this book checks itself", 0),
    ("book/references.html", "D. References", 0),
]
INSTRUCTORS = [("book/instructors.html", "For instructors", 0)]
PAGES = CHAPTERS + APPENDICES + INSTRUCTORS
# Pages without a single equation (a list of papers); every other page must typeset math.
NO_MATH = {"book/references.html"}

WIDTHS = {"1280px": 1280, "400px": 400}

IMAGES = """
() => Array.from(document.querySelectorAll('article img')).map(img => ({
    src: img.getAttribute('src'),
    complete: img.complete,
    width: img.naturalWidth,
}))
"""


@pytest.fixture
def page(browser_context):
    page = browser_context.new_page()
    page.set_default_timeout(60_000)  # generous: CI machines can be busy
    failed = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.on(
        "response",
        lambda response: failed.append(f"{response.url} (HTTP {response.status})")
        if response.status >= 400
        else None,
    )
    page.failed_requests = failed
    console = []
    page.on("console", lambda message: console.append(message.text)
            if message.type == "error" else None)
    page.on("pageerror", lambda error: console.append(f"uncaught: {error}"))
    page.console_errors = console
    yield page
    page.close()


@pytest.mark.parametrize("path, title, min_figures", PAGES, ids=[p[0] for p in PAGES])
def test_page_renders(page, server_url, path, title, min_figures):
    response = page.goto(f"{server_url}/{path}", wait_until="load")
    assert response is not None and response.ok, f"{path}: HTTP {response and response.status}"

    assert page.title() == f"{title} \u2014 {BOOK_TITLE}"
    heading = page.locator("article h1").first.inner_text()
    assert heading.replace("#", "").strip() == title

    typeset = page_checks.wait_until_settled(page)
    if path not in NO_MATH:
        assert typeset != -1, f"{path}: MathJax did not load"
        assert typeset > 0, f"{path}: no typeset math (no mjx-container elements)"

    images = page.evaluate(IMAGES)
    broken = [image["src"] for image in images if not image["complete"] or image["width"] == 0]
    assert not broken, f"{path}: images that did not load: {broken}"
    figures = [image for image in images if "_images/" in (image["src"] or "")]
    assert len(figures) >= min_figures, (
        f"{path}: expected at least {min_figures} figures, found {len(figures)}"
    )

    assert not page.failed_requests, f"{path}: failed requests: {page.failed_requests}"


def _read_page(page, url, width):
    """Open ``url`` at ``width`` px and collect every finding of the reading checks."""
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(url, wait_until="load")
    # Fonts (MathJax's included) load after typesetting; wait for them, not for
    # "network idle", which a busy machine can miss even when every request succeeded.
    page_checks.wait_until_settled(page)
    findings = {
        "TeX in the rendered text": page_checks.stray_tex(page),
        "MathJax errors": page_checks.mathjax_errors(page),
        "console errors": list(page.console_errors),
        "failed requests": list(page.failed_requests),
    }
    if width >= 1280:
        findings["wider than the article column"] = page_checks.column_overflow(page)
    else:
        findings["wider than the screen"] = page_checks.page_overflow(page)
    findings["test tooling named"] = page_checks.tooling_words(page)
    return {name: found for name, found in findings.items() if found}


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
@pytest.mark.parametrize("path", [p[0] for p in PAGES])
def test_page_reads_clean(page, server_url, screenshot_dir, path, width):
    findings = _read_page(page, f"{server_url}/{path}", width)
    if path not in {p[0] for p in CHAPTERS}:
        # the appendices and the instructors' page may name the book's test tooling
        findings.pop("test tooling named", None)
    name = path.removeprefix("book/").removesuffix(".html")
    page.screenshot(path=screenshot_dir / f"{name}-{width}.png", full_page=True)
    assert not findings, f"{path} at {width} px: " + "; ".join(
        f"{kind}: {found[:10]}" for kind, found in findings.items())


# (fixture page, width, the kind of finding it must produce)
KNOWN_BAD = [
    ("stray-tex.html", 1280, "TeX in the rendered text"),
    ("stray-tex.html", 400, "TeX in the rendered text"),
    ("mathjax-error.html", 1280, "MathJax errors"),
    ("wide-code.html", 1280, "wider than the article column"),
    ("wide-table.html", 1280, "wider than the article column"),
    ("wide-page.html", 400, "wider than the screen"),
    ("console-error.html", 1280, "console errors"),
    ("failed-request.html", 1280, "failed requests"),
    ("tooling-words.html", 1280, "test tooling named"),
]


@pytest.mark.parametrize("fixture, width, kind", KNOWN_BAD,
                         ids=[f"{f}-{w}" for f, w, _ in KNOWN_BAD])
def test_checks_catch_known_bad_pages(page, fixture_url, fixture, width, kind):
    findings = _read_page(page, f"{fixture_url}/{fixture}", width)
    assert kind in findings, f"{fixture} at {width} px: {findings}"


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
def test_checks_pass_a_clean_page(page, fixture_url, width):
    assert _read_page(page, f"{fixture_url}/clean.html", width) == {}


def test_internal_links_resolve(page, server_url):
    """Every same-site link on every page points at a file the build contains."""
    broken = []
    checked = set()
    for path, _, _ in PAGES:
        page.goto(f"{server_url}/{path}")
        hrefs = page.evaluate("() => Array.from(document.querySelectorAll('a[href]'), a => a.href)")
        for href in hrefs:
            target = urllib.parse.urldefrag(href).url
            if not target.startswith(server_url) or target in checked:
                continue
            checked.add(target)
            try:
                with urllib.request.urlopen(target) as reply:
                    ok = reply.status == 200
            except urllib.error.HTTPError:
                ok = False
            if not ok:
                broken.append(f"{path} -> {target}")
    assert checked, "no internal links found at all"
    assert not broken, f"broken internal links: {broken}"


SIDEBAR_ENTRIES = """
() => Array.from(document.querySelectorAll('nav.bd-docs-nav a.reference.internal'),
                 a => a.textContent.trim().replace(/\\s+/g, ' '))
"""
SECTION_NUMBERS = """
() => Array.from(document.querySelectorAll('article span.section-number'),
                 span => span.textContent.trim())
"""


def test_numbering_chapters_appendices_and_instructors(page, server_url):
    """Chapters 1, 2, ...; appendices A, B, ... (their sections A.1, ...); instructors unnumbered."""
    page.goto(f"{server_url}/book/01-convolution.html")
    entries = page.evaluate(SIDEBAR_ENTRIES)
    titles = [title for _, title, _ in PAGES[1:]]
    assert [e for e in entries if e in titles] == titles, entries
    for path, title, _ in PAGES[1:]:
        page.goto(f"{server_url}/{path}")
        numbers = page.evaluate(SECTION_NUMBERS)
        if path == "book/instructors.html":
            assert numbers == [], f"{path}: numbered sections {numbers}"
            continue
        prefix = title.split(" ", 1)[0]  # "3." or "A."
        assert numbers and all(n.startswith(prefix) for n in numbers), (path, numbers)
