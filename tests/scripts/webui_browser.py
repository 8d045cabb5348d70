#!/usr/bin/env python3
"""Drive Shoal's web UI in a real browser (Debian's chromium, over WebDriver with selenium).

Run by tests/tests/webui.rs, which starts the daemon, a tracker and libtorrent seeders on a
loopback of its own (a network namespace) and checks the daemon's side afterwards. When this
prints `restart: same key` (then `restart: new key`), the test restarts the daemon at the same
address with the same key (then with --new-key). Each step
prints `ok: <step>`; the first failure prints `FAIL: <why>` and exits 1. Screenshots go to
--shots. Waits poll the page's state with a deadline; nothing sleeps to synchronise.
"""
import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.common.exceptions import WebDriverException

TIMEOUT = 60.0


class Failed(Exception):
    pass


def wait(what, check, timeout=TIMEOUT):
    """Polls `check()` until it returns something truthy; fails with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            got = check()
            if got:
                return got
        except WebDriverException as e:
            last = e.msg
        time.sleep(0.05)
    raise Failed("timed out after %ss waiting for %s%s" % (timeout, what, " (%s)" % last if last else ""))


START = time.monotonic()


def ok(step):
    print("ok: %s (at %.1fs)" % (step, time.monotonic() - START), flush=True)


class Ui:
    def __init__(self, args):
        self.args = args
        self.base = args.url.rstrip("/")
        opts = webdriver.ChromeOptions()
        opts.binary_location = args.chromium
        for flag in [
            "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--no-first-run",
            "--no-default-browser-check", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-default-apps",
            "--disable-extensions", "--disable-domain-reliability", "--disable-breakpad",
            "--metrics-recording-only", "--disable-features=MediaRouter,OptimizationHints,Translate",
            "--autoplay-policy=no-user-gesture-required", "--mute-audio", "--window-size=1280,900",
            "--user-data-dir=%s" % tempfile.mkdtemp(prefix="shoal-webui-chromium-"),
        ]:
            opts.add_argument(flag)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(executable_path=args.chromedriver, log_output=os.path.join(args.shots, "chromedriver.log"))
        self.d = webdriver.Chrome(options=opts, service=service)
        self.d.set_script_timeout(30)

    def js(self, script, *args):
        return self.d.execute_script(script, *args)

    def el(self, css):
        return self.d.find_element(By.CSS_SELECTOR, css)

    def visible(self, css):
        found = self.d.find_elements(By.CSS_SELECTOR, css)
        return found[0] if found and found[0].is_displayed() else None

    def text(self, css):
        found = self.d.find_elements(By.CSS_SELECTOR, css)
        return found[0].text if found else ""

    def click(self, css):
        def ready():
            el = self.visible(css)
            return el if el is not None and el.is_enabled() else None
        wait("%s to be clickable" % css, ready).click()

    def type(self, css, text):
        field = wait("%s to show" % css, lambda: self.visible(css))
        field.clear()
        field.send_keys(text)

    def shot(self, name):
        path = os.path.join(self.args.shots, name + ".png")
        self.d.save_screenshot(path)
        print("screenshot: %s" % path, flush=True)

    def api(self, path):
        req = urllib.request.Request(self.base + path, headers={"X-Api-Key": self.args.key})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.load(resp)

    def download(self, ih):
        return self.api("/downloads?infohash=%s" % ih)["downloads"][0]

    def row(self, ih):
        return 'tr[data-infohash="%s"]' % ih

    def console_errors(self):
        """Errors the page logged (script errors, console.error); failed requests are the
        network's, reported by the steps that make them."""
        return [e for e in self.d.get_log("browser") if e["level"] == "SEVERE" and e.get("source") != "network"]


def sign_in(ui, key):
    ui.d.get(ui.base + "/ui")
    ui.type("#key", "not-the-key")
    ui.click("#sign-in-submit")
    wait("the wrong key to be refused", lambda: "Wrong API key" in ui.text("#sign-in-error"))
    ok("a wrong key is refused with a message")
    ui.type("#key", key)
    ui.click("#sign-in-submit")
    wait("the downloads page", lambda: ui.visible("#downloads"))
    cookie = ui.d.get_cookie("api_key")
    assert cookie and cookie["value"] == key, "the key is kept in the api_key cookie: %s" % cookie
    ok("signed in with the key; it is kept in the api_key cookie")
    ui.d.delete_all_cookies()
    ui.d.get(ui.base + "/ui?key=" + key)
    wait("the downloads page after the sign-in link", lambda: ui.visible("#downloads"))
    assert "key=" not in ui.d.current_url, "the key left the address bar: %s" % ui.d.current_url
    ok("the /ui?key= link signs in, and the key leaves the address")


def add_magnet(ui, magnet, ih, name, dest):
    ui.click("#add-open")
    ui.type("#add-uri", magnet)
    ui.click("#add-fetch")
    wait("the magnet's files in the preview", lambda: name in ui.text("#add-preview h3"))
    ui.type("#add-destination", dest)
    ui.click("#add-submit")
    wait("the magnet's row", lambda: ui.visible(ui.row(ih)))
    ok("added a magnet after its /torrentinfo preview")


def play_while_downloading(ui, ih):
    ui.click(ui.row(ih) + " button.name")
    ui.click('button[data-play="0"]')
    wait("the player", lambda: ui.visible("#player-media"))
    tag = ui.js("return document.getElementById('player-media').tagName")
    assert tag == "VIDEO", "the player of a video is a <%s>" % tag.lower()
    before = ui.download(ih)["progress"]
    ok("player open at %.0f%%" % (before * 100))
    wait("playback to start", lambda: ui.js("return document.getElementById('player-media').currentTime") > 0.5)
    t1 = ui.js("return document.getElementById('player-media').currentTime")
    wait("currentTime to advance", lambda: ui.js("return document.getElementById('player-media').currentTime") > t1 + 0.5)
    during = ui.download(ih)["progress"]
    assert during < 1.0, "the download had finished before the player was tested (progress %s)" % during
    size = ui.js("const m = document.getElementById('player-media'); return [m.videoWidth, m.videoHeight]")
    assert size[0] > 0 and size[1] > 0, "no video frames decoded (%s)" % size
    ok("the video's currentTime advances while the download is at %.0f%% (was %.0f%% when the player opened; %dx%d frames)" % (during * 100, before * 100, size[0], size[1]))
    duration = wait("the media's duration", lambda: ui.js("const m = document.getElementById('player-media'); return isFinite(m.duration) && m.duration > 0 && m.duration"))
    target = duration * 0.9
    ui.js("document.getElementById('player-media').currentTime = arguments[0]", target)
    wait("playback after a seek to 90%", lambda: ui.js("const m = document.getElementById('player-media'); return !m.paused && !m.seeking && m.currentTime > arguments[0] + 0.5", target))
    after = ui.download(ih)["progress"]
    assert after < 1.0, "the download had finished before the seek was tested"
    ok("a seek to 90%% of %.1fs plays while the download is at %.0f%%" % (duration, after * 100))
    ui.shot("player")
    ui.click("#player-close")


def reaches_complete(ui, ih):
    ui.click("#details-back")
    wait("100% in the row", lambda: ui.text(ui.row(ih) + " .pct") == "100%", timeout=120)
    ok("progress reached 100%")
    # A seed downloads nothing: no download speed, at once (not an average decaying for seconds).
    wait("status Seeding", lambda: ui.text(ui.row(ih) + " td.status") == "Seeding", timeout=10)
    dl = ui.download(ih)
    assert dl["status"] == "SEEDING" and dl["speed_down"] == 0, "a seed with a download speed: %s %s" % (dl["status"], dl["speed_down"])
    assert ui.text(ui.row(ih) + " td.down") == "", "the seed's row shows a download speed %r" % ui.text(ui.row(ih) + " td.down")
    ok("seeding with %d peers: speed_down 0 and no download speed in the row" % dl["num_peers"])


def pause_resume(ui, ih):
    row = ui.row(ih)
    ui.click(row + ' td.check input')
    ui.click("#action-pause")
    wait("status Stopped", lambda: ui.text(row + " td.status") == "Stopped")
    ok("paused: the row says Stopped")
    ui.click("#action-resume")
    wait("status Seeding", lambda: ui.text(row + " td.status") == "Seeding")
    ok("resumed: the row says Seeding")
    ui.click(row + ' td.check input')
    ui.shot("downloads")


def drop(ui, path):
    """Drops the file at `path` on the page. A file input outside the UI stands in for the
    desktop: its file is dropped with a real DataTransfer, through the page's own handler."""
    ui.js("document.getElementById('test-drop-source')?.remove(); const i = document.createElement('input'); i.type = 'file'; i.id = 'test-drop-source'; i.style.display = 'none'; document.body.append(i);")
    ui.el("#test-drop-source").send_keys(path)
    ui.js("""
        const file = document.getElementById('test-drop-source').files[0];
        const dt = new DataTransfer(); dt.items.add(file);
        for (const type of ['dragenter', 'dragover', 'drop'])
          document.querySelector('main').dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true, cancelable: true}));
    """)


def drop_torrent(ui, path, ih, name, skip, dest):
    drop(ui, path)
    wait("the dropped torrent's files in the preview", lambda: name in ui.text("#add-preview h3"))
    labels = ui.d.find_elements(By.CSS_SELECTOR, "#add-preview label")
    box = [l for l in labels if l.text.endswith(skip)]
    assert box, "no box for %s in the preview" % skip
    ui.el("#" + box[0].get_attribute("for")).click()
    ui.type("#add-destination", dest)
    ui.click("#add-submit")
    wait("the dropped torrent's row", lambda: ui.visible(ui.row(ih)))
    ok("added a dropped .torrent with %s left out" % skip)
    wait("100% of the dropped torrent", lambda: ui.text(ui.row(ih) + " .pct") == "100%", timeout=120)
    files = ui.api("/downloads/%s/files" % ih)["files"]
    skipped = [f for f in files if f["name"].endswith(skip)]
    assert skipped and not skipped[0]["included"] and skipped[0]["progress"] == 0, "files: %s" % files
    ui.click(ui.row(ih) + " button.name")
    box = wait("the details' file boxes", lambda: ui.visible('input[data-file="%d"]' % skipped[0]["index"]))
    assert not box.is_selected(), "the left-out file is ticked in the details"
    ui.shot("details")
    ui.click("#details-back")
    ok("the left-out file is not selected and has progress 0")


def filter_and_sort(ui, first_ih, second_ih):
    """With two seeding downloads: the text filter, Tribler's filters and sorting by name."""
    def shown():
        return ui.js("return [...document.querySelectorAll('#downloads-body tr')].map((r) => r.dataset.infohash)")
    ui.type("#text-filter", "pattern")
    wait("only the matching row", lambda: shown() == [first_ih])
    ui.el("#text-filter").send_keys(Keys.BACKSPACE * len("pattern"))
    wait("both rows again", lambda: len(shown()) == 2)
    ui.click('button[data-filter="downloading"]')
    wait("no row under Downloading", lambda: shown() == [])
    ui.click('button[data-filter="completed"]')
    wait("both rows under Completed", lambda: len(shown()) == 2)
    ui.click('button[data-filter="all"]')
    ascending = wait("rows by name", lambda: shown() if len(shown()) == 2 else None)
    ui.click('th[data-col="name"] button')
    wait("rows by name, descending", lambda: shown() == ascending[::-1])
    ui.click('th[data-col="name"] button')
    wait("rows by name again", lambda: shown() == ascending)
    ok("the text filter, the Downloading/Completed filters and sorting by name work")


def change_setting(ui, folder):
    ui.d.get(ui.base + "/ui#settings")
    ui.type("#set-download_defaults-saveas", folder)
    field = "#set-libtorrent-max_upload_rate"
    ui.type(field, "-5")
    ui.click("#settings-save")
    msg = wait("the daemon's 400 message next to the field", lambda: ui.text(field + "-error"))
    ok("an invalid value shows the daemon's message next to the field: %r" % msg)
    ui.type(field, "100")
    ui.click("#settings-save")
    wait("Saved.", lambda: ui.text("#settings-status") == "Saved.")
    ui.d.refresh()
    wait("the saved value after a reload", lambda: ui.visible(field) and ui.el(field).get_attribute("value") == "100")
    settings = ui.api("/settings")["settings"]
    rate = settings["libtorrent"]["max_upload_rate"]
    assert rate == 100 * 1024, "GET /settings has max_upload_rate %s" % rate
    saveas = settings["download_defaults"]["saveas"]
    assert saveas == folder, "GET /settings has saveas %s" % saveas
    assert ui.el("#set-download_defaults-saveas").get_attribute("value") == folder, "the folder after a reload"
    ok("the upload limit 100 KiB/s and the download folder persist across a reload (max_upload_rate %d)" % rate)


def remove_with_data(ui, ih, data):
    ui.d.get(ui.base + "/ui#downloads")
    row = ui.row(ih)
    ui.click(row + " td.check input")
    wait("only this download selected", lambda: ui.text(".count") == "1 selected" and ui.el(row + " td.check input").is_selected())
    ui.click("#action-remove")
    ui.click("#remove-data")
    ui.click("#remove-confirm")
    wait("the row to go", lambda: not ui.d.find_elements(By.CSS_SELECTOR, row))
    wait("the data to go", lambda: not os.path.exists(data), timeout=20)
    ok("removed with its data: %s is gone" % data)


def search_and_add(ui, name, ih):
    ui.d.get(ui.base + "/ui#search")
    ui.type("#search-text", name[:3])
    wait("a completion for %r" % name[:3], lambda: name in ui.js("return [...document.querySelectorAll('#search-completions option')].map((o) => o.value)"))
    ui.type("#search-text", name)
    ui.click("#search-submit")
    row = '#search-results tr[data-infohash="%s"]' % ih
    wait("%s in the results" % name, lambda: ui.visible(row))
    ok("search completes %r and finds %s (health: %s)" % (name[:3], name, ui.text(row + " td:nth-child(4)")))
    ui.click(row + " button.add")
    wait("the result added", lambda: ui.text(row + " button.add") == "Added")
    ui.d.get(ui.base + "/ui#downloads")
    wait("the added result in the downloads", lambda: ui.visible(ui.row(ih)))
    ok("a search result is added in one click")


def not_a_torrent(ui, path):
    drop(ui, path)
    msg = wait("a message about the file", lambda: "is not a torrent file" in ui.text("#add-message") and ui.text("#add-message"))
    assert not ui.el("#add-submit").is_enabled(), "a file that is not a torrent can be added"
    ui.click("dialog.add .buttons button:not(.primary)")
    wait("the dialog to close", lambda: not ui.visible("dialog.add"))
    ok("a file that is not a torrent gets a message: %r" % msg)


def magnet_without_peers(ui):
    """A magnet no peer has: the dialog says at once that it is looking for the torrent's files,
    offers to stop looking or to add it without the file list, and both paths carry on."""
    ih = os.urandom(20).hex()
    magnet = "magnet:?xt=urn:btih:%s&dn=nobody-has-this" % ih

    def ask():
        ui.click("#add-open")
        ui.type("#add-uri", magnet)
        ui.click("#add-fetch")
        # At once, not after the daemon's minute of looking.
        msg = wait("the looking message", lambda: "Looking for the torrent's files" in ui.text("#add-message") and ui.text("#add-message"), timeout=5)
        assert ui.visible("#add-stop"), "no Stop looking button"
        assert ui.el("#add-submit").is_enabled() and ui.text("#add-submit") == "Add without the file list", ui.text("#add-submit")
        return msg

    msg = ask()
    ui.click("#add-stop")
    wait("the stopped message", lambda: "Stopped looking" in ui.text("#add-message"), timeout=5)
    assert not ui.visible("#add-stop"), "Stop looking still shown after stopping"
    ui.click("dialog.add .buttons button:not(.primary)")
    wait("the dialog to close", lambda: not ui.visible("dialog.add"))
    listed = [d["infohash"] for d in ui.api("/downloads")["downloads"]]
    assert ih not in listed, "stopping the looking added the magnet"
    ok("a magnet with no peers: %r at once; Stop looking stops, and nothing is added" % msg)

    ask()
    ui.click("#add-submit")
    row = ui.row(ih)
    wait("the magnet's row", lambda: ui.visible(row), timeout=10)
    status = wait("Waiting for metadata", lambda: ui.text(row + " td.status") == "Waiting for metadata" and ui.text(row + " td.status"), timeout=10)
    dl = ui.download(ih)
    assert dl["status_code"] == 7, "the daemon's download: %s %s" % (dl["status"], dl.get("error"))
    ok("a magnet with no peers added without the file list: the row says %r" % status)
    ui.click(row + " td.check input")
    ui.click("#action-remove")
    ui.click("#remove-confirm")
    wait("the row to go", lambda: not ui.d.find_elements(By.CSS_SELECTOR, row))
    ok("and it is removed again")


# The accessible name of every control shown, computed as browsers do in the common cases:
# aria-labelledby, aria-label, its <label>s, a button's text, title. Lists those without one.
UNNAMED_JS = """
const unnamed = [];
for (const el of document.querySelectorAll('input:not([type=hidden]), button, select, textarea, a[href], [role=button]')) {
  if (!el.getClientRects().length) continue;
  const by = (el.getAttribute('aria-labelledby') || '').split(/\\s+/).filter(Boolean)
    .map((id) => document.getElementById(id)?.textContent || '').join(' ');
  const labels = [...(el.labels || [])].map((l) => l.textContent).join(' ');
  const own = el.matches('button, a, [role=button]') ? el.textContent : '';
  const name = [by, el.getAttribute('aria-label') || '', labels, own, el.title || ''].join(' ').trim();
  if (!name) unnamed.push(el.outerHTML.slice(0, 120));
}
return unnamed;
"""


def all_named(ui, where):
    """Every control shown has an accessible name."""
    unnamed = ui.js(UNNAMED_JS)
    assert not unnamed, "controls without an accessible name on %s: %s" % (where, unnamed)
    return ui.js("return document.querySelectorAll('input, button, select, textarea, a[href]').length")


def no_overflow(ui, where):
    """Nothing sticks out sideways at the current width."""
    widths = ui.js("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], "%s scrolls sideways: %s px wide in a %s px viewport" % (where, widths[0], widths[1])


def reachable(ui, css):
    """The control shows, whole, inside the viewport's width."""
    box = ui.js("const r = document.querySelector(arguments[0])?.getBoundingClientRect(); return r && [r.left, r.right, r.width, window.innerWidth]", css)
    assert box and box[2] > 0 and box[0] >= 0 and box[1] <= box[3], "%s is not reachable: %s" % (css, box)


def readable(text, where):
    """A message the user can read: not the daemon's JSON."""
    assert text and not any(c in text for c in '{}') and '"error"' not in text, "%s shows %r" % (where, text)


def usable_and_accessible(ui, ih):
    """Issue #19's item 8: phone width, keyboard, names on controls, dark theme, readable errors."""
    ui.d.get(ui.base + "/ui#downloads")
    wait("the row", lambda: ui.visible(ui.row(ih)))
    count = all_named(ui, "the downloads page")
    ui.click("#add-open")
    wait("the add dialog", lambda: ui.visible("#add-uri"))
    count += all_named(ui, "the add dialog")
    ui.click("dialog.add .buttons button:not(.primary)")
    wait("the dialog to close", lambda: not ui.visible("dialog.add"))
    for page, ready in [("#settings", "#settings-save"), ("#search", "#search-text"), ("#download/" + ih, "#details-back")]:
        ui.d.get(ui.base + "/ui" + page)
        wait(page, lambda: ui.visible(ready))
        count += all_named(ui, page)
    ok("every control shown (%d on the downloads page, the add dialog, settings, search and details) has an accessible name" % count)

    # The keyboard: Tab from the top reaches the main controls, each with a visible focus ring.
    ui.d.get(ui.base + "/ui#downloads")
    wait("the row", lambda: ui.visible(ui.row(ih)))
    ui.js("document.activeElement.blur()")
    wanted = {"#nav-downloads", "#nav-search", "#nav-settings", "#add-open", "#text-filter",
              'button[data-filter="completed"]', ui.row(ih) + " td.check input", ui.row(ih) + " button.name"}
    reached = set()
    for _ in range(60):
        ActionChains(ui.d).send_keys(Keys.TAB).perform()
        focus = ui.js("""const el = document.activeElement, s = getComputedStyle(el);
            return [el.matches(':focus-visible'), s.outlineStyle, parseFloat(s.outlineWidth)]""")
        for css in wanted - reached:
            if ui.js("return document.activeElement === document.querySelector(arguments[0])", css):
                assert focus[0] and focus[1] != "none" and focus[2] >= 1, "%s has no visible focus: %s" % (css, focus)
                reached.add(css)
        if reached == wanted:
            break
    assert reached == wanted, "Tab never reached %s" % (wanted - reached)
    ok("Tab reaches the navigation, Add, the filters, a row's box and its name, each with a visible focus ring")
    # Space ticks a row's box, Enter opens the add dialog and a download's details.
    box = ui.el(ui.row(ih) + " td.check input")
    box.send_keys(Keys.SPACE)
    wait("Space to tick the box", lambda: box.is_selected() and ui.text(".count") == "1 selected")
    box.send_keys(Keys.SPACE)
    wait("Space to untick it", lambda: not box.is_selected())
    ui.el("#add-open").send_keys(Keys.ENTER)
    wait("Enter to open the add dialog", lambda: ui.visible("dialog.add"))
    ui.d.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait("Escape to close it", lambda: not ui.visible("dialog.add"))
    ui.el(ui.row(ih) + " button.name").send_keys(Keys.ENTER)
    wait("Enter to open the details", lambda: ui.visible("#details-back"))
    ok("Space ticks and unticks a row, Enter opens the add dialog (Escape closes it) and the details")

    # Phone width: no page scrolls sideways, the main actions show whole.
    ui.d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True})
    try:
        for page, ready in [("#downloads", ui.row(ih)), ("#download/" + ih, "#details-back"), ("#settings", "#settings-save"), ("#search", "#search-text")]:
            ui.d.get(ui.base + "/ui" + page)
            wait(page, lambda: ui.visible(ready))
            no_overflow(ui, page)
            if page == "#downloads":
                for css in ["#add-open", "#nav-settings", "#text-filter", 'button[data-filter="inactive"]', "#action-remove", ui.row(ih) + " td.check input", ui.row(ih) + " button.name"]:
                    reachable(ui, css)
                ui.shot("phone")
                ui.click("#add-open")
                wait("the add dialog", lambda: ui.visible("#add-uri"))
                no_overflow(ui, "the add dialog")
                for css in ["#add-uri", "#add-fetch", "#add-submit"]:
                    reachable(ui, css)
                ui.click("dialog.add .buttons button:not(.primary)")
            if page == "#settings":
                reachable(ui, "#settings-save")
        ok("at 390x844 no page scrolls sideways and the main actions show whole")
    finally:
        ui.d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    # The dark theme follows the system's preference.
    ui.d.get(ui.base + "/ui#downloads")
    wait("the row", lambda: ui.visible(ui.row(ih)))
    colours_js = "const b = getComputedStyle(document.body), t = getComputedStyle(document.querySelector('table')); return [b.backgroundColor, b.color, t.backgroundColor]"

    def luminance(rgb):
        r, g, b = [int(x) for x in rgb[rgb.index("(") + 1:rgb.index(")")].split(",")[:3]]
        return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255

    ui.d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "light"}]})
    light = ui.js(colours_js)
    ui.d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    try:
        dark = wait("the dark colours", lambda: ui.js(colours_js) != light and ui.js(colours_js))
        assert luminance(dark[0]) < 0.2 and luminance(dark[1]) > 0.7 and luminance(dark[2]) < 0.2, "dark theme: %s" % dark
        assert luminance(light[0]) > 0.8 and luminance(light[1]) < 0.3, "light theme: %s" % light
        ui.shot("dark")
    finally:
        ui.d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    ok("prefers-color-scheme: dark turns the page dark (body %s on %s, was %s on %s)" % (dark[1], dark[0], light[1], light[0]))

    # The daemon's error shapes read as sentences: from the API module itself, then in the UI.
    shapes = ui.d.execute_async_script("""
        const done = arguments[arguments.length - 1];
        import('/ui/api.js').then((api) => done([
          api.errorMessage(400, {error: 'destination must be an absolute path: x'}),
          api.errorMessage(500, {error: {handled: true, message: 'metainfo error'}}),
          api.errorMessage(500, {error: {code: 'RuntimeError', handled: false, message: 'boom'}}),
          api.errorMessage(500, {error: {code: 'RuntimeError'}}),
          api.errorMessage(502, null),
        ]));""")
    for text in shapes:
        readable(text, "errorMessage")
    assert shapes[:3] == ["destination must be an absolute path: x", "metainfo error", "boom"], shapes
    ui.click("#add-open")
    ui.type("#add-uri", "magnet:?xt=urn:btih:not-a-hash")
    ui.click("#add-fetch")
    bad = wait("the daemon's 400 for a bad magnet", lambda: ui.text("#add-message") and "Looking" not in ui.text("#add-message") and ui.text("#add-message"))
    readable(bad, "a bad magnet")
    ui.type("#add-uri", "magnet:?xt=urn:btih:%s" % os.urandom(20).hex())
    ui.click("#add-fetch")
    wait("the looking message", lambda: "Looking" in ui.text("#add-message"))
    ui.type("#add-destination", "relative/folder")
    ui.click("#add-submit")
    rel = wait("the daemon's 400 for a relative destination", lambda: "absolute" in ui.text("#add-message") and ui.text("#add-message"))
    readable(rel, "a relative destination")
    ui.click("dialog.add .buttons button:not(.primary)")
    wait("the dialog to close", lambda: not ui.visible("dialog.add"))
    ok("the daemon's error shapes read as sentences: %s; in the add dialog: %r, %r" % (shapes, bad, rel))


def daemon_restarts(ui, ih):
    wait("/events to be open", lambda: ui.js("return document.body.dataset.events") == "open")
    print("restart: same key", flush=True)
    wait("the page to notice the daemon went away", lambda: ui.js("return document.body.dataset.events") == "lost")
    wait("/events again after the restart", lambda: ui.js("return document.body.dataset.events") == "open")
    wait("the downloads back", lambda: ui.visible(ui.row(ih)))
    rate = ui.api("/settings")["settings"]["libtorrent"]["max_upload_rate"]
    assert rate == 100 * 1024, "after the restart GET /settings has max_upload_rate %s" % rate
    ok("the page reconnected to /events after a daemon restart; the setting survived it")


def key_changes(ui, new_key, ih):
    print("restart: new key", flush=True)
    msg = wait("the sign-in form after a 401", lambda: ui.visible("#key") and "refused" in ui.text("#sign-in-error") and ui.text("#sign-in-error"))
    ok("a 401 after the key changed asks for the key again: %r" % msg)
    ui.type("#key", new_key)
    ui.click("#sign-in-submit")
    wait("the downloads after signing in again", lambda: ui.visible(ui.row(ih)))
    wait("/events with the new key", lambda: ui.js("return document.body.dataset.events") == "open")
    ok("signed in with the new key: downloads and /events are back")


def perf(ui, key, n):
    """With `n` downloads in the daemon: the first render, the main-thread time of update cycles,
    and the page's size, from the browser's Performance API."""
    ui.d.get(ui.base + "/ui?key=" + key)
    wait("%d rows" % n, lambda: ui.js("return document.querySelectorAll('#downloads-body tr').length") == n, timeout=30)
    first = ui.js("return performance.getEntriesByName('downloads-first-render')[0].startTime")
    # Long tasks of the update cycles from now on (over 50 ms of main-thread time in one go:
    # parsing, rendering, style, layout); the first render's are its own budget, above.
    ui.js("window.shoalLong = []; new PerformanceObserver((l) => window.shoalLong.push(...l.getEntries().map((e) => e.duration))).observe({type: 'longtask'});")
    base = ui.js("return performance.getEntriesByName('downloads-render').length")
    wait("ten update cycles", lambda: ui.js("return performance.getEntriesByName('downloads-render').length") >= base + 10, timeout=60)
    renders = ui.js("return performance.getEntriesByName('downloads-render').slice(-10).map((e) => e.duration)")
    long_tasks = ui.js("return window.shoalLong")
    size = ui.js("""return [performance.getEntriesByType('navigation')[0], ...performance.getEntriesByType('resource')]
        .filter((e) => new URL(e.name).pathname.startsWith('/ui')).reduce((s, e) => s + e.decodedBodySize, 0)""")
    ok("%d downloads: first render at %.0f ms; update cycles %s ms; long tasks %s ms; page %d bytes"
       % (n, first, ", ".join("%.1f" % r for r in renders), [round(t) for t in long_tasks], size))
    # From navigation start: page, script and the list of 1000 fetched, then drawn. Typically
    # 0.6-0.9 s here, 1.1 s seen on a loaded 2-core machine; a quadratic render or a blocking
    # fetch takes several seconds, which this bound still catches.
    assert first < 2000, "the first render took %.0f ms" % first
    assert max(renders) < 100, "an update cycle took %.1f ms" % max(renders)
    assert all(t < 100 for t in long_tasks), "main-thread tasks over 100 ms in update cycles: %s" % long_tasks
    assert size < 300 * 1024, "the page is %d bytes" % size
    errors = ui.console_errors()
    assert not errors, "console errors: %s" % errors


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--perf", type=int, default=0, help="only measure, with this many downloads in the daemon")
    p.add_argument("--magnet")
    p.add_argument("--magnet-ih")
    p.add_argument("--magnet-name")
    p.add_argument("--magnet-dest", help="where the magnet's download goes")
    p.add_argument("--torrent", help="the .torrent to drop")
    p.add_argument("--torrent-ih")
    p.add_argument("--torrent-name")
    p.add_argument("--skip", help="the file of --torrent to leave out")
    p.add_argument("--dest", help="where the dropped torrent goes")
    p.add_argument("--not-a-torrent", help="a file to drop that is not a torrent")
    p.add_argument("--new-key", help="the key of the daemon after the second restart")
    p.add_argument("--shots", required=True)
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    args = p.parse_args()
    ui = Ui(args)
    try:
        if args.perf:
            perf(ui, args.key, args.perf)
            return 0
        sign_in(ui, args.key)
        add_magnet(ui, args.magnet, args.magnet_ih, args.magnet_name, args.magnet_dest)
        play_while_downloading(ui, args.magnet_ih)
        reaches_complete(ui, args.magnet_ih)
        pause_resume(ui, args.magnet_ih)
        drop_torrent(ui, args.torrent, args.torrent_ih, args.torrent_name, args.skip, args.dest)
        filter_and_sort(ui, args.magnet_ih, args.torrent_ih)
        change_setting(ui, args.dest)
        remove_with_data(ui, args.torrent_ih, os.path.join(args.dest, args.torrent_name))
        # Added again from a search (into the download folder just set), then removed again.
        search_and_add(ui, args.torrent_name, args.torrent_ih)
        remove_with_data(ui, args.torrent_ih, os.path.join(args.dest, args.torrent_name))
        not_a_torrent(ui, args.not_a_torrent)
        magnet_without_peers(ui)
        usable_and_accessible(ui, args.magnet_ih)
        daemon_restarts(ui, args.magnet_ih)
        key_changes(ui, args.new_key, args.magnet_ih)
        errors = ui.console_errors()
        assert not errors, "console errors: %s" % errors
        ok("no console errors")
    except (Failed, AssertionError, WebDriverException) as e:
        print("FAIL: %s" % e, flush=True)
        try:
            ui.shot("failure")
            print("console: %s" % ui.d.get_log("browser"), flush=True)
        except WebDriverException:
            pass
        return 1
    finally:
        ui.d.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
