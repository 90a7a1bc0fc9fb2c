"""What the browser test looks for on a rendered page, as functions of a Playwright page.

Each function returns a list of findings (empty when the page is fine), so the
same code judges the book's chapters and the small known-bad pages in
``fixtures/`` that prove every check can fail.
"""

import re

# Text a reader sees that still looks like TeX: a dollar sign, or a backslash
# command such as \mu. Code, program output and typeset math are skipped.
STRAY_TEX = r"""
() => {
    const root = document.querySelector('article') || document.body;
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    const found = [];
    while (walker.nextNode()) {
        const node = walker.currentNode;
        const parent = node.parentElement;
        if (!parent || parent.closest(
                'pre, code, kbd, samp, script, style, mjx-container, .MathJax')) {
            continue;
        }
        const text = node.textContent;
        if (/\$|\\[A-Za-z]+/.test(text)) {
            found.push(text.trim().slice(0, 120));
        }
    }
    return found;
}
"""

MATHJAX_ERRORS = """
() => Array.from(
    document.querySelectorAll('mjx-merror, .MathJax_Error, [data-mjx-error]'),
    el => (el.getAttribute('data-mjx-error') || el.textContent).trim().slice(0, 120))
"""

# Anything in the article column that scrolls sideways or reaches past the
# column's right edge. Only the outermost offender of a subtree is named.
COLUMN_OVERFLOW = r"""
() => {
    const article = document.querySelector('article');
    if (!article) { return ['no <article> element']; }
    const limit = article.getBoundingClientRect().right + 1;
    const describe = el => {
        const cls = typeof el.className === 'string' && el.className.trim()
            ? '.' + el.className.trim().split(/\s+/).join('.') : '';
        const text = (el.innerText || el.textContent || '').trim()
            .replace(/\s+/g, ' ').slice(0, 80);
        return `${el.tagName.toLowerCase()}${cls}: "${text}"`;
    };
    const found = [];
    const offenders = [];
    for (const el of article.querySelectorAll('*')) {
        if (offenders.some(o => o.contains(el))) { continue; }
        const style = getComputedStyle(el);
        if (style.display === 'none' || style.visibility === 'hidden') { continue; }
        const rect = el.getBoundingClientRect();
        const scrolls = ['auto', 'scroll'].includes(style.overflowX)
            && el.scrollWidth > el.clientWidth + 1;
        if (scrolls) {
            found.push(`scrolls sideways by ${el.scrollWidth - el.clientWidth} px: ${describe(el)}`);
            offenders.push(el);
        } else if (rect.width > 0 && rect.right > limit) {
            found.push(`${Math.round(rect.right - limit)} px past the column: ${describe(el)}`);
            offenders.push(el);
        }
    }
    return found;
}
"""

PAGE_OVERFLOW = """
() => document.documentElement.scrollWidth - document.documentElement.clientWidth
"""

MATHJAX_DONE = """
async () => {
    if (!window.MathJax || !MathJax.startup || !MathJax.startup.promise) {
        return -1;
    }
    await MathJax.startup.promise;
    return document.querySelectorAll('mjx-container').length;
}
"""


# Names of the book's own test tooling and course logistics, which belong in the
# appendices and on the instructors' page, never in a student chapter.
TOOLING_WORDS = re.compile(
    r"\bnbval\b|\bpytest\b|\bhypothesis\b|\bunit tests?\b|\btest suite\b"
    r"|\bcourse kit\b|\bour (?:2-core )?machine\b",
    re.IGNORECASE)
CI_WORD = re.compile(r"\bCI\b")  # continuous integration; case matters


def tooling_words(page):
    """The names of test tooling in the text of the page's article (code included)."""
    text = page.locator("article").first.text_content()  # closed dropdowns included
    return sorted({m.group(0) for m in TOOLING_WORDS.finditer(text)}
                  | {m.group(0) for m in CI_WORD.finditer(text)})


def stray_tex(page):
    """Rendered text that still contains ``$``, ``$$`` or a ``\\command``."""
    return page.evaluate(STRAY_TEX)


def mathjax_errors(page):
    """The messages of MathJax's error nodes (a TeX error it could not typeset)."""
    return page.evaluate(MATHJAX_ERRORS)


def column_overflow(page):
    """Elements of the article that scroll sideways or reach past its right edge."""
    return page.evaluate(COLUMN_OVERFLOW)


def page_overflow(page):
    """Findings if the page is wider than the window (it scrolls sideways)."""
    extra = page.evaluate(PAGE_OVERFLOW)
    return [f"the page is {extra} px wider than the window"] if extra > 0 else []


def wait_until_settled(page):
    """Wait for MathJax (if the page has it) and for the fonts; return the typeset count."""
    typeset = page.evaluate(MATHJAX_DONE)
    page.evaluate("async () => { await document.fonts.ready; }")
    return typeset
