"""Open every page of the built book in headless Chromium and check what a reader sees.

For each page: it loads over HTTP, its title is the chapter's, MathJax has
typeset its equations (``mjx-container`` elements, no ``mjx-merror``), every
image has loaded (``naturalWidth > 0``) and chapters with figures show them,
and no resource the page asks for (scripts, fonts, images) fails to load.
Finally every internal link of every page must resolve.
"""

import urllib.error
import urllib.parse
import urllib.request

import pytest

BOOK_TITLE = "convlab"

# (page, title of its first heading with the toc's number, least number of figures)
PAGES = [
    ("book/intro.html", "Convolutional networks, from loops to kernels", 0),
    ("book/01-convolution.html", "1. Convolution", 1),
    ("book/02-max-pooling.html", "2. Max pooling", 0),
    ("book/03-fast-layers.html", "3. Fast layers", 0),
    ("book/04-sandwich-layers.html", "4. Sandwich layers", 0),
    ("book/05-three-layer-convnet.html", "5. A three-layer ConvNet", 2),
    ("book/06-spatial-batchnorm.html", "6. Spatial batch normalization", 0),
    ("book/07-experiments.html", "7. Experiments", 1),
]

MATHJAX_DONE = """
async () => {
    if (!window.MathJax || !MathJax.startup || !MathJax.startup.promise) {
        return -1;
    }
    await MathJax.startup.promise;
    return document.querySelectorAll('mjx-container').length;
}
"""

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
    yield page
    page.close()


@pytest.mark.parametrize("path, title, min_figures", PAGES, ids=[p[0] for p in PAGES])
def test_page_renders(page, server_url, path, title, min_figures):
    response = page.goto(f"{server_url}/{path}", wait_until="load")
    assert response is not None and response.ok, f"{path}: HTTP {response and response.status}"

    assert page.title() == f"{title} \u2014 {BOOK_TITLE}"
    heading = page.locator("article h1").first.inner_text()
    assert heading.replace("#", "").strip() == title

    typeset = page.evaluate(MATHJAX_DONE)
    assert typeset != -1, f"{path}: MathJax did not load"
    assert typeset > 0, f"{path}: no typeset math (no mjx-container elements)"
    assert page.locator("mjx-merror").count() == 0, f"{path}: MathJax reported a TeX error"

    images = page.evaluate(IMAGES)
    broken = [image["src"] for image in images if not image["complete"] or image["width"] == 0]
    assert not broken, f"{path}: images that did not load: {broken}"
    figures = [image for image in images if "_images/" in (image["src"] or "")]
    assert len(figures) >= min_figures, (
        f"{path}: expected at least {min_figures} figures, found {len(figures)}"
    )

    # Fonts (MathJax's included) load after typesetting; wait for them, not for "network idle",
    # which a busy machine can miss even when every request succeeded.
    page.evaluate("async () => { await document.fonts.ready; }")
    assert not page.failed_requests, f"{path}: failed requests: {page.failed_requests}"


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
