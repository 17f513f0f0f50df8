"""The smoke run's report as a user sees it: opened in headless Chromium (Debian's chromium
and chromium-driver, driven by selenium), in a laptop-sized window, offline."""

import pytest

pytestmark = pytest.mark.integration
webdriver = pytest.importorskip("selenium.webdriver")

WINDOW = (1280, 800)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options,
                              service=webdriver.ChromeService(executable_path="/usr/bin/chromedriver"))
    yield driver
    driver.quit()


def test_the_report_renders_whole_in_a_browser(smoke, browser):
    out, _ = smoke
    browser.get((out / "report.html").as_uri())
    browser.save_screenshot(str(out / "report.png"))  # what a user sees first, kept with the run
    images = browser.execute_script(
        "return [...document.images].map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])")
    assert len(images) >= 4
    assert [src for src, complete, width in images if not (complete and width > 0)] == []
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    # the emulation banner and the claims table are seen without scrolling
    above_fold = browser.execute_script("""
        const seen = e => e && e.getBoundingClientRect().top < window.innerHeight
                          && e.getBoundingClientRect().bottom > 0;
        const banner = [...document.querySelectorAll('.alert')]
                       .find(a => a.textContent.includes('Emulated, not virtualized'));
        const claims = document.getElementById('claims').nextElementSibling.nextElementSibling;
        return [seen(banner), claims.tagName, seen(claims), window.scrollY];""")
    assert above_fold == [True, "TABLE", True, 0]
    # every figure says what it shows, and the contents reach every section
    captions = browser.execute_script(
        "return [...document.querySelectorAll('figure')].map(f => "
        "(f.querySelector('figcaption') || {}).textContent || '')")
    assert captions and all(len(c.split()) >= 12 for c in captions), captions
    sections = browser.execute_script(
        "return [[...document.querySelectorAll('nav.toc a')].map(a => a.hash.slice(1)),"
        " [...document.querySelectorAll('h2')].map(h => h.id)]")
    assert sections[0] == sections[1] and "claims" in sections[0]
    assert (out / "report.png").stat().st_size > 20_000


def test_the_report_needs_nothing_from_the_network(smoke):
    out, _ = smoke
    page = (out / "report.html").read_text()
    for remote in ("http://", "https://", "//cdn"):
        assert f'src="{remote}' not in page and f'href="{remote}' not in page
