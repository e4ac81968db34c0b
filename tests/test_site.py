"""The course website, checked in a real browser (headless Chromium driven by playwright).

Builds the site with ``docs/course.py``, serves it on the loopback address and, on every course page (the landing page,
the methods, glossary and benchmarks pages, one page per notebook), asserts: no console error, every image loaded
(natural width > 0), no raw ``$$`` left by the math renderer, every internal link resolves, the navigation links the
glossary, and a notebook's page links both editions of its notebook (the full one and the student one, which holds no
solution).
On the reflow page the animation must change its frame as it plays; on the landing page the reflow explorer must answer
its slider and round buttons without a request leaving the page. Every API page (pdoc, ``docs/api.py``) loads without
a console error and shows every public name of its module; the benchmarks page shows its figures. Screenshots go to
``out/site/screenshots``. Without Chromium the browser tests are skipped with the install command; under ``CI=true``
that skip is a failure. Four tests need no browser: every public function, class and method has a docstring, and the
benchmarks page draws a quality-against-NFE result and a time-to-quality result with their floors, and no time curve
from a single budget.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs"))
import api  # noqa: E402
import benchmarks_figures  # noqa: E402
import benchmarks_page  # noqa: E402
import course  # noqa: E402

INSTALL = "apt-get install -y chromium && pip install -e '.[site]'"


def _chromium() -> str | None:
    return next((path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))), None)


def _require(condition: bool, reason: str) -> None:
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must run the browser test ({INSTALL})")
    pytest.skip(f"{reason}; install it with: {INSTALL}")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no line per request in the test output
        pass


@pytest.fixture(scope="module")
def site():
    _require(_chromium() is not None, "no Chromium found")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _require(False, "playwright is not installed")
    out = ROOT / "out" / "site"
    started = time.perf_counter()
    pages = course.build_site(out)
    print(f"make site: {len(pages)} pages in {time.perf_counter() - started:.1f} s")
    handler = functools.partial(_QuietHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield out, pages, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _check_page(page, url: str, out: Path) -> list[str]:
    problems: list[str] = []
    page.on("console", lambda message: message.type == "error" and problems.append(f"console error: {message.text}"))
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url[:100]}"))
    page.on("response", lambda response: response.status >= 400 and problems.append(f"HTTP {response.status}: {response.url}"))
    page.goto(url, wait_until="load")
    if page.evaluate("typeof MathJax !== 'undefined'"):
        page.evaluate("new Promise(done => MathJax.Hub.Queue(() => done(true)))")
    broken = page.evaluate("[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 80))")
    problems += [f"image not loaded: {src}" for src in broken]
    text = page.evaluate("document.body.innerText")
    if "$$" in text:
        at = text.index("$$")
        problems.append(f"raw $$ left unrendered: …{text[max(at - 60, 0):at + 60]}…")
    hrefs = page.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))")
    for href in hrefs:
        target = urlparse(urljoin(url, href))
        if not target.netloc.startswith("127.0.0.1") or href.startswith(("#", "mailto:")):
            continue
        if not (out / unquote(target.path).lstrip("/")).is_file():
            problems.append(f"broken link: {href}")
    nav = page.evaluate("[...document.querySelectorAll('nav.course a')].map(a => a.getAttribute('href'))")
    nav = [urlparse(urljoin(url, href)).path.lstrip("/") for href in nav]  # from the site's root
    if "glossary.html" not in nav:
        problems.append("the navigation does not link the glossary")
    name = Path(urlparse(url).path).stem
    if (out / "notebooks" / f"{name}.ipynb").is_file():  # a notebook's page: both editions, from its navigation
        problems += [f"the navigation does not link {edition}" for edition in (f"notebooks/{name}.ipynb", f"student/{name}.ipynb")
                     if edition not in nav]
    if urlparse(url).path == "/index.html":
        problems += [f"the landing page does not link {edition}" for path in course.paths()
                     for edition in (f"notebooks/{path.name}", f"student/{path.name}") if edition not in hrefs]
    return problems


def course_pages(out: Path, pages: list[Path]) -> list[Path]:
    return [path for path in pages if not path.is_relative_to(out / "api")]


def test_every_page_renders_in_chromium(site):
    from playwright.sync_api import sync_playwright

    out, pages, base = site
    shots = out / "screenshots"
    shots.mkdir(exist_ok=True)
    report = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        for path in course_pages(out, pages):
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            report[path.name] = _check_page(page, f"{base}/{path.name}", out)
            if path.name in ("index.html", "03_rectified_flow.html"):
                page.screenshot(path=str(shots / path.name.replace(".html", ".png")), full_page=path.name == "index.html")
            page.close()
        browser.close()
    print(f"checked {len(report)} pages in Chromium")
    for name, problems in report.items():
        print(name, problems or "ok")
    assert len(report) == len(course.paths()) + 4, "expected the landing, methods, glossary, benchmarks pages, one per notebook"
    assert not {name: problems for name, problems in report.items() if problems}


def test_the_site_offers_both_editions(site):
    out, _, _ = site
    for path in course.paths():
        full, student = course.load(out / "notebooks" / path.name), course.load(out / "student" / path.name)
        assert full == course.load(path), f"{path.name}: the site's full edition is not the committed notebook"
        assert not any(course.is_solution(cell) for cell in student["cells"]), f"{path.name}: a solution in the student edition"
        assert not any(course.BEGIN in "".join(cell["source"]) for cell in student["cells"]), f"{path.name}: a solution left"
        assert not any(cell.get("outputs") for cell in student["cells"]), f"{path.name}: the student edition has outputs"


def test_the_reflow_animation_plays(site):
    from playwright.sync_api import sync_playwright

    out, _, base = site
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(f"{base}/03_rectified_flow.html", wait_until="load")
        gif = page.locator("img[src^='data:image/gif']").first
        gif.scroll_into_view_if_needed()
        frames = []
        for _ in range(3):
            frames.append(gif.screenshot())
            page.wait_for_timeout(700)
        gif.screenshot(path=str(out / "screenshots" / "animation.png"))
        browser.close()
    assert len(set(frames)) > 1, "the animation showed the same frame for 1.4 s"


def test_the_landing_page_explorer_responds(site):
    """The landing page's explorer draws, moving the time slider changes the canvas, switching rounds changes the
    numbers, the other data pair loads too, no console error, and no request leaves the local server."""
    from playwright.sync_api import sync_playwright

    out, _, base = site
    problems, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda message: message.type == "error" and problems.append(f"console error: {message.text}"))
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on("request", lambda request: requests.append(request.url))
        page.goto(f"{base}/index.html", wait_until="load")
        heading = page.locator("h2").first.inner_text()
        assert "reflow" in heading.lower(), f"the landing page should open with the explorer, its first heading is {heading!r}"
        drawn = []
        for index in range(len(course.explorers())):
            page.locator(".explorer-pick button").nth(index).click()
            name = course.explorers()[index][0]
            page.wait_for_function(f"document.getElementById('explorer-frame').contentDocument?.location.href.endsWith('{name}')"
                                   " && document.getElementById('explorer-frame').contentDocument.querySelector('.tfx')"
                                   "?.dataset.firstDraw !== undefined")
            frame = page.frame_locator("#explorer-frame")
            inner = next(f for f in page.frames if f.url.endswith(name))
            drawn.append(float(inner.evaluate("document.querySelector('.tfx').dataset.firstDraw")))
            canvas = "document.querySelector('canvas').toDataURL()"
            before = inner.evaluate(canvas)
            frame.locator(".tfx-slider").fill("600")
            assert inner.evaluate(canvas) != before, f"{name}: moving the time slider did not change the drawing"
            assert frame.locator(".tfx-t").inner_text() == "t = 0.60"
            numbers = frame.locator(".tfx-numbers").inner_text()
            frame.locator(".tfx-rounds button", has_text="3-RF").click()
            assert frame.locator(".tfx-numbers").inner_text() != numbers, f"{name}: switching rounds kept the numbers"
            shown = inner.evaluate(canvas)
            frame.locator(".tfx-paths").uncheck()
            assert inner.evaluate(canvas) != shown, f"{name}: hiding the paths did not change the drawing"
            frame.locator(".tfx-play").click()
            page.wait_for_timeout(300)
            assert frame.locator(".tfx-t").inner_text() != "t = 0.60", f"{name}: play did not move time on"
            frame.locator(".tfx-play").click()
            if index == 0:
                (out / "screenshots").mkdir(exist_ok=True)
                page.locator("#explorer").screenshot(path=str(out / "screenshots" / "explorer.png"))
        browser.close()
    print(f"explorer first draw, ms after navigation (contended machine): {drawn}")
    assert not problems, problems
    leaving = [url for url in requests if not url.startswith((base, "data:"))]
    assert not leaving, f"requests left the page: {leaving[:5]}"


def test_every_api_page_shows_its_module(site):
    """One page per public module (and ``toyflow._base``), no console error or failed request, every public name of the
    module on its page (a member's anchor, or a link for a submodule in ``__all__``), the course's links in its sidebar."""
    from playwright.sync_api import sync_playwright

    out, pages, base = site
    modules = api.public_modules()
    assert {out / "api" / api.page_of(module) for module in modules} <= set(pages)
    report = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        for module in ["index", *modules]:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            url = f"{base}/api/{'index.html' if module == 'index' else api.page_of(module)}"
            problems = _check_page(page, url, out)
            for name in [] if module == "index" else api.public_names(module):
                shown = page.evaluate("name => !!document.getElementById(name) || [...document.querySelectorAll('a')]"
                                      ".some(a => a.textContent.trim() === name)", name)
                if not shown:
                    problems.append(f"{name} is not on the page")
            if module == "toyflow.paths":  # Unicode math, the bottom layer's page linked from the index
                page.screenshot(path=str(out / "screenshots" / "api.png"))
            report[module] = problems
            page.close()
        browser.close()
    print(f"checked {len(report)} API pages in Chromium")
    assert not {module: problems for module, problems in report.items() if problems}


def test_the_benchmarks_page_shows_its_figures(site):
    """The benchmarks page: every figure drawn from benchmarks/results/*.json loads, no console error, a heading for
    every result, the metrics explained, a section and the reproducing command for every benchmark script."""
    from playwright.sync_api import sync_playwright

    out, _, base = site
    figures = sorted(path.name for path in (out / "benchmarks").glob("*.png"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        problems = _check_page(page, f"{base}/benchmarks.html", out)
        shown = page.evaluate("[...document.images].filter(i => i.complete && i.naturalWidth > 0)"
                              ".map(i => i.getAttribute('src').split('/').pop())")
        sections = page.evaluate("[...document.querySelectorAll('section')].map(s => s.id)")
        codes = page.evaluate("[...document.querySelectorAll('section code')].map(c => c.textContent)")
        headings = page.evaluate("[...document.querySelectorAll('section h3')].map(h => h.textContent)")
        text = page.evaluate("document.body.innerText")
        page.screenshot(path=str(out / "screenshots" / "benchmarks.png"), full_page=True)
        browser.close()
    assert not problems, problems
    assert sorted(shown) == figures, f"figures written {figures}, shown {shown}"
    results = sorted(path.name for path in benchmarks_page.RESULTS.glob("*.json"))
    assert sorted(headings) == results, f"results {results}, shown {headings}"
    assert "fine W2" in text and "budget s" in text, "the page does not say what its metrics and timings are"
    scripts = [script.stem for script in benchmarks_page.scripts()]
    assert sorted(sections) == sorted(scripts)
    for script in scripts:
        assert any(code.startswith(f"python benchmarks/{script}.py") for code in codes), f"no command for {script}"
    options = (ROOT / "benchmarks" / "common.py").read_text()
    for code in codes:
        if code.startswith("python benchmarks/") and " " in code.removeprefix("python "):
            script = (ROOT / code.split()[1]).read_text()
            unknown = [flag for flag in code.split() if flag.startswith("--") and f'"{flag}"' not in script + options]
            assert not unknown, f"{code}: no such option {unknown}"


def test_every_public_name_has_a_docstring():
    """Every public function, class and method of every documented module has a docstring. The names below had none
    when the API reference was added; the list may only shrink (delete a line when its docstring is written)."""
    missing = [name for module in api.public_modules() for name in api.missing_docstrings(module)]
    new = sorted(set(missing) - WITHOUT_DOCSTRING)
    written = sorted(WITHOUT_DOCSTRING - set(missing))
    if written:
        print("these have a docstring now (or are gone), delete them from WITHOUT_DOCSTRING:", ", ".join(written))
    assert not new, f"{len(new)} public names without a docstring: {', '.join(new)}"


WITHOUT_DOCSTRING: set[str] = set()  # public names allowed without a docstring: none left


FLOORS = {"floor_w2": 0.12, "iid_floor_w2": 0.19, "fine_floor": 0.03}


def test_a_quality_against_nfe_result_is_drawn(tmp_path):
    """A result shaped like flow_matching.json (per-seed rows with ``W2 @ k`` and ``fine W2 @ k``, three floors,
    settings): a W2-against-NFE and a fine-W2-against-NFE figure, one line per recipe at the median over seeds, the W2
    floors on W2's panel and the fine floor on fine W2's, and a command with the recorded settings as flags."""
    rows = [{"recipe": recipe, "seed": seed, "steps": 100, "train s": 1.0 + seed,
             **{f"W2 @ {k}": base / k + 0.01 * seed for k in (1, 2, 4)},
             **{f"fine W2 @ {k}": base / k / 8 for k in (1, 4)}}
            for recipe, base in (("toyflow, 5 s", 1.0), ("torchcfm OT-CFM", 0.8)) for seed in (0, 1, 2)]
    result = {**FLOORS, "settings": {"seeds": [0, 1, 2], "swap_steps": 0, "lr": 0.002}, "rows": rows}
    curves = benchmarks_figures.nfe_curves(rows)
    assert list(curves) == ["W2", "fine W2"]
    assert curves["W2"]["toyflow, 5 s · steps 100"] == [(1, 1.01), (2, 0.51), (4, 0.26)]
    assert curves["fine W2"]["torchcfm OT-CFM · steps 100"] == [(1, 0.1), (4, 0.025)]
    drawn = benchmarks_figures.figures("flow_matching", result, tmp_path)
    assert [file for file, _ in drawn] == ["flow_matching_rows_W2_nfe.png", "flow_matching_rows_fine_W2_nfe.png"]
    assert all((tmp_path / file).stat().st_size for file, _ in drawn)
    assert benchmarks_figures.floors(result) == FLOORS
    names = benchmarks_figures.floor_names()
    assert benchmarks_figures.nfe_panel(curves["W2"], "W2", result).floors == {names["floor_w2"]: 0.12,
                                                                               names["iid_floor_w2"]: 0.19}
    assert benchmarks_figures.nfe_panel(curves["fine W2"], "fine W2", result).floors == {names["fine_floor"]: 0.03}
    assert names["fine_floor"] == "fine W2 floor (40,000 points)"
    assert (benchmarks_page.command("flow_matching", result["settings"])
            == "python benchmarks/flow_matching.py --seeds 0 1 2 --swap-steps 0 --lr 0.002")


def _timed_rows(budgets: tuple[int, ...]) -> list[dict]:
    """2 methods × ``budgets`` × 2 seeds: train s = budget + 0.02 (seed + 1), W2 @ 100 = base / budget + 0.1 seed,
    fine W2 @ 100 = base / (10 budget) + 0.01 seed, and a step count measured per run (it must not name a line)."""
    return [{"method": method, "seed": seed, "budget s": budget, "steps": 1000 * budget + 7 * seed + len(method),
             "train s": budget + 0.02 * (seed + 1), "W2 @ 100": base / budget + 0.1 * seed,
             "fine W2 @ 100": base / (10 * budget) + 0.01 * seed}
            for method, base in (("a", 1.0), ("bb", 2.0)) for budget in budgets for seed in (0, 1)]


def test_a_time_to_quality_result_is_drawn(tmp_path):
    """Rows with ``budget s`` and ``train s``: quality against the median training seconds of each budget, one line
    per method, a panel per quality column with its own floors, the best median in the panel's title."""
    rows = _timed_rows((5, 10))
    curves = benchmarks_figures.time_curves(rows)
    assert list(curves) == ["W2 @ 100", "fine W2 @ 100"] and list(curves["W2 @ 100"]) == ["a", "bb"]
    medians = {"W2 @ 100": {"a": [5.03, 0.25, 10.03, 0.15], "bb": [5.03, 0.45, 10.03, 0.25]},
               "fine W2 @ 100": {"a": [5.03, 0.025, 10.03, 0.015], "bb": [5.03, 0.045, 10.03, 0.025]}}
    for column, lines in medians.items():
        for line, expected in lines.items():
            assert [v for point in curves[column][line] for v in point] == pytest.approx(expected), (column, line)
    result = {**FLOORS, "rows": rows}
    panels = benchmarks_figures.time_panels(rows, result)
    assert [(panel.ylabel, sorted(panel.floors.values())) for panel in panels] == [("W2 @ 100", [0.12, 0.19]),
                                                                                  ("fine W2 @ 100", [0.03])]
    assert panels[0].title == "W2 @ 100: best median 0.15 (a, after 10 s)"
    assert benchmarks_figures.floors_for("NLL gap", result) == {"exact density": 0.0}
    drawn = benchmarks_figures.figures("fm", result, tmp_path)
    assert [file for file, _ in drawn] == ["fm_rows_time.png"] and (tmp_path / "fm_rows_time.png").stat().st_size


def test_a_single_budget_draws_no_time_curve(tmp_path):
    """One budget per line is one point per line, not a curve: no time figure (and no curve over ``budget s``)."""
    rows = _timed_rows((5,))
    assert benchmarks_figures.time_curves(rows) == {}
    assert benchmarks_figures.figures("fm", {**FLOORS, "rows": rows}, tmp_path) == []
