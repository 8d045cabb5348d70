#!/usr/bin/env python3
"""Runs Tribler's stock PyPI GUI (tribler==7.13.1) against an external core and watches it.

The core is whatever listens on CORE_API_PORT with CORE_API_KEY (for Shoal's tests: `shoal
daemon`). The GUI is started through its own entry point (`tribler.run:main`) after two patches
that attach it to an external core (shared/tribler-api/README.md §8.1):
  * the pre-flight "REST API port already in use" check passes;
  * CoreManager never spawns a core of its own (if it tries, that is recorded as a failure).

From inside the GUI process it records, for the test to judge:
  * every event topic received on /events, and when `events_start` came (= connected);
  * every error or drop of the events connection, and every reconnect attempt;
  * every exception raised by the event reader (`on_read_data`, e.g. JSONDecodeError);
  * every FeedbackDialog / ConfirmationDialog created, and any seen visible by a 0.5 s QTimer;
  * every GUI or core error that reached Tribler's ErrorHandler;
  * every HTTP request of the GUI's request manager with its status (negative = Qt error);
  * whether the downloads page showed the download the test added (--expect-infohash).

Once connected it drives the GUI as a user would, through its own widgets (QTest clicks and key
presses), one flow after the other (class Flows), saving a screenshot of the window after each
into --shots-dir:
  * popular: the Popular page loaded at start-up (200) and shows when its menu button is clicked;
  * downloads: the downloads page shows --expect-infohash, and a click selects it;
  * search (--search-word): typed in the top search bar + Enter, the results show
    --search-infohash;
  * health (--health-infohash): a click on that row's health cell sends the health check, and
    the row then shows --health-seeders seeders;
  * popular-checked (with health): the reloaded Popular page lists the checked torrent;
  * tag (--tag): the row's edit-tags button opens the tag editor; the tag typed there and saved
    is sent (PATCH /knowledge) and shown on the row.

After --duration seconds (or at once when the GUI has not connected within --connect-timeout)
it saves a screenshot of the screen, writes the JSON report, prints a summary and exits: 0 if
the GUI connected, stayed connected, opened no dialog, hit no exception, showed the download,
ran every flow to its end and got no non-200 answer outside the --allow-non-200 path prefixes;
1 otherwise.

Usage (under Xvfb): python tribler_gui.py --duration 600 --report R.json --screenshot S.png \
    --shots-dir DIR [--search-word W --search-infohash IH] [--health-infohash IH
    --health-seeders N] [--tag T --tag-infohash IH]
"""

import argparse
import json
import os
import sys
import time
import traceback
from urllib.parse import urlsplit

# Counted from the start of the launcher, in seconds.
START = time.monotonic()


def now():
    return round(time.monotonic() - START, 3)


class Report:
    """What the hooks saw; written as JSON at the end."""

    def __init__(self):
        self.events = {}  # topic -> count
        self.connected_at = None  # first events_start
        self.last_event_at = None
        self.events_status = None  # HTTP status of the /events reply
        self.connect_attempts = 0  # calls of EventRequestManager._connect_to_core
        self.connection_problems = []  # on_error / on_finished of the events connection
        self.reader_exceptions = []  # exceptions raised by on_read_data
        self.dialogs = []  # FeedbackDialog / ConfirmationDialog created or seen visible
        self.errors = []  # ErrorHandler.gui_error / core_error calls
        self.own_core_attempts = []  # CoreManager tried to start a core of its own
        self.requests = []  # {t, method, path, status}
        self.download_row_seen_at = None
        self.flows = {}  # flow name -> what it showed ({"failed": why} if it could not)
        self.screenshots = {}  # name -> path
        self.ui_problems = []  # the launcher could not drive the UI as planned

    def as_dict(self):
        return dict(self.__dict__)


REPORT = Report()


def last_line(text):
    """The last non-empty line of a traceback: the exception and its message."""
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def log(msg):
    print(f"[tribler_gui {now():8.1f}s] {msg}", flush=True)


def item(msg):
    """A line of a list in the summary (prefixed too, so the test can pick the summary out)."""
    print(f"[tribler_gui]     {msg}", flush=True)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, required=True, help="seconds to keep the GUI running")
    p.add_argument("--connect-timeout", type=float, default=90, help="seconds to wait for events_start")
    p.add_argument("--report", required=True, help="where to write the JSON report")
    p.add_argument("--screenshot", required=True, help="where to save the final screenshot (PNG)")
    p.add_argument("--expect-infohash", help="a download the downloads page must show (hex)")
    p.add_argument("--shots-dir", required=True, help="where the flows save their screenshots")
    p.add_argument("--search-word", help="a word to type in the search bar")
    p.add_argument("--search-infohash", help="a torrent the search for --search-word must show (hex)")
    p.add_argument("--health-infohash", help="a search result whose health cell to click (hex)")
    p.add_argument("--health-seeders", type=int, help="the seeders its tracker reports")
    p.add_argument("--tag", help="a tag to add to --tag-infohash with the tag editor")
    p.add_argument("--tag-infohash", help="the search result to tag (hex)")
    p.add_argument(
        "--allow-non-200",
        action="append",
        default=[],
        metavar="PREFIX",
        help="path prefix whose non-200 answers are listed but not a failure (repeatable)",
    )
    return p.parse_args()


# ---------------------------------------------------------------------------------------------
# Hooks, installed before the GUI's window exists (slots are bound when connected).


def wrap(cls, name, make):
    """Replaces cls.name by make(original)."""
    setattr(cls, name, make(getattr(cls, name)))


def attach_to_external_core():
    from tribler.core.utilities.network_utils import default_network_utils
    from tribler.gui.core_manager import CoreManager

    # The GUI refuses a CORE_API_PORT that is already bound, i.e. any running core.
    default_network_utils.is_port_free = lambda port: True

    def refuse(name):
        def start_own_core(self, *args, **kwargs):
            REPORT.own_core_attempts.append({"t": now(), "call": name})
            log(f"the GUI tried to start a core of its own ({name}): it could not use ours")

        return start_own_core

    CoreManager.do_upgrade_and_start_core = refuse("do_upgrade_and_start_core")
    CoreManager.start_tribler_core = refuse("start_tribler_core")


def hook_event_stream():
    from PyQt5.QtNetwork import QNetworkRequest
    from tribler.core.utilities.notifier import Notifier
    from tribler.gui.event_request_manager import EventRequestManager as ERM

    def connect_to_core(orig):
        def hooked(self, *args, **kwargs):
            REPORT.connect_attempts += 1
            if REPORT.connect_attempts > 1:
                log(f"events: reconnect attempt {REPORT.connect_attempts - 1}")
            return orig(self, *args, **kwargs)

        return hooked

    def on_read_data(orig):
        def hooked(self):
            if REPORT.events_status is None and self.reply is not None:
                REPORT.events_status = self.reply.attribute(QNetworkRequest.HttpStatusCodeAttribute)
            try:
                return orig(self)
            except Exception as e:
                # The GUI's own handling (sys.excepthook -> FeedbackDialog) still runs: re-raise.
                buffered = self.current_event_string
                REPORT.reader_exceptions.append(
                    {"t": now(), "type": type(e).__name__, "message": str(e), "buffer": buffered[-300:]}
                )
                log(f"events: the reader raised {type(e).__name__}: {e} on {buffered[-120:]!r}")
                raise

        return hooked

    def on_error(orig):
        def hooked(self, error, reschedule_on_err):
            if not self.shutting_down:
                name = self.network_errors.get(error, error)
                was_connected = bool(self.receiving_data)
                REPORT.connection_problems.append(
                    {"t": now(), "what": "on_error", "error": str(name), "was_receiving": was_connected}
                )
                log(f"events: connection error {name} (was receiving data: {was_connected})")
            return orig(self, error, reschedule_on_err)

        return hooked

    def on_finished(orig):
        def hooked(self):
            if not self.shutting_down:
                REPORT.connection_problems.append({"t": now(), "what": "on_finished (connection dropped)"})
                log("events: the connection was closed")
            return orig(self)

        return hooked

    def notify_by_topic_name(orig):
        def hooked(self, topic_name, *args, **kwargs):
            REPORT.events[topic_name] = REPORT.events.get(topic_name, 0) + 1
            REPORT.last_event_at = now()
            if topic_name == "events_start":
                if REPORT.connected_at is None:
                    REPORT.connected_at = now()
                log(f"events: events_start {kwargs}")
            return orig(self, topic_name, *args, **kwargs)

        return hooked

    wrap(ERM, "_connect_to_core", connect_to_core)
    wrap(ERM, "on_read_data", on_read_data)
    wrap(ERM, "on_error", on_error)
    wrap(ERM, "on_finished", on_finished)
    wrap(Notifier, "notify_by_topic_name", notify_by_topic_name)


def hook_requests():
    from tribler.gui.network.request import Request

    def on_finished(orig):
        def hooked(self):
            if not self.reply or not self.manager:
                return orig(self)
            method, url = self.method, self.url
            try:
                return orig(self)
            finally:
                parts = urlsplit(url)
                path = parts.path + (f"?{parts.query}" if parts.query else "")
                REPORT.requests.append({"t": now(), "method": method, "path": path, "status": self.status_code})

        return hooked

    wrap(Request, "on_finished", on_finished)


# The request whose error answer the GUI is showing right now (RequestManager.show_error opens a
# "Request error" ConfirmationDialog for it): lets a dialog be traced to its request.
SHOWING_ERROR_OF = []

# id() of every dialog the hooks saw created -> its entry in REPORT.dialogs.
CREATED_DIALOGS = {}


def hook_dialogs_and_errors():
    from tribler.gui.dialogs.confirmationdialog import ConfirmationDialog
    from tribler.gui.dialogs.feedbackdialog import FeedbackDialog
    from tribler.gui.error_handler import ErrorHandler
    from tribler.gui.network.request_manager import RequestManager

    def show_error(orig):
        def hooked(self, request, data):
            SHOWING_ERROR_OF.append(urlsplit(request.url).path)
            try:
                return orig(self, request, data)
            finally:
                SHOWING_ERROR_OF.pop()

        return hooked

    def confirmation_init(orig):
        def hooked(self, parent, title, main_text, *args, **kwargs):
            entry = {"t": now(), "class": "ConfirmationDialog", "title": title, "text": main_text}
            if SHOWING_ERROR_OF:
                entry["request"] = SHOWING_ERROR_OF[-1]
            REPORT.dialogs.append(entry)
            CREATED_DIALOGS[id(self)] = entry
            log(f"dialog: ConfirmationDialog {title!r}: {main_text[:300]!r}")
            return orig(self, parent, title, main_text, *args, **kwargs)

        return hooked

    def feedback_init(orig):
        def hooked(self, *args, **kwargs):
            err = kwargs.get("reported_error")
            # Tribler's ReportedError.type is always "type"; the traceback's last line says what.
            text = last_line(err.text) if err is not None else ""
            entry = {"t": now(), "class": "FeedbackDialog", "text": text}
            REPORT.dialogs.append(entry)
            CREATED_DIALOGS[id(self)] = entry
            log(f"dialog: FeedbackDialog {text[:600]!r}")
            return orig(self, *args, **kwargs)

        return hooked

    def gui_error(orig):
        def hooked(self, exc_type, exc, tb):
            text = "".join(traceback.format_exception(exc_type, exc, tb))
            headline = f"{exc_type.__name__}: {exc}"
            REPORT.errors.append({"t": now(), "source": "gui", "headline": headline, "text": text})
            log(f"GUI exception: {headline}")
            return orig(self, exc_type, exc, tb)

        return hooked

    def core_error(orig):
        def hooked(self, reported_error):
            headline = f"{reported_error.type}: {last_line(reported_error.text)}"
            REPORT.errors.append({"t": now(), "source": "core", "headline": headline, "text": reported_error.text})
            log(f"core exception reported: {reported_error.type}: {reported_error.text}")
            return orig(self, reported_error)

        return hooked

    wrap(RequestManager, "show_error", show_error)
    wrap(ConfirmationDialog, "__init__", confirmation_init)
    wrap(FeedbackDialog, "__init__", feedback_init)
    wrap(ErrorHandler, "gui_error", gui_error)
    wrap(ErrorHandler, "core_error", core_error)
    return (FeedbackDialog, ConfirmationDialog)


# ---------------------------------------------------------------------------------------------
# The flows: what a user does with the GUI, driven through its own widgets (found by their
# objectName in Tribler's .ui files) with QTest's mouse clicks and key presses. Each flow is a
# generator: it yields while it waits (one watcher tick, 0.5 s, per yield) and returns when done;
# it fails by raising FlowFailed. Flows run one after the other, each with a deadline.

FLOW_TIMEOUT = 90  # seconds for one flow: a search or a health check takes a few here


class FlowFailed(Exception):
    """A flow could not do what a user would have seen done."""


def wait_until(what, cond, timeout=30):
    """Yields until cond() is truthy (then returns its value); FlowFailed after timeout s."""
    deadline = now() + timeout
    while True:
        value = cond()
        if value:
            return value
        if now() > deadline:
            raise FlowFailed(f"timed out after {timeout} s waiting for {what}")
        yield


def request_seen(method, path, since):
    """The first request method path (exact path, any query) the GUI sent after `since`."""
    for r in REPORT.requests:
        if r["t"] >= since and r["method"] == method and urlsplit(r["path"]).path == path:
            return r
    return None


def click(widget, pos=None):
    """A left click on `widget` (at `pos`, else its centre), as QTest sends it."""
    from PyQt5.QtCore import Qt
    from PyQt5.QtTest import QTest

    if pos is None:
        QTest.mouseClick(widget, Qt.LeftButton)
    else:
        QTest.mouseClick(widget, Qt.LeftButton, Qt.NoModifier, pos)


def find_row(model, infohash):
    """(row, data item) of the torrent `infohash` in a table model, or None."""
    for row, item in enumerate(model.data_items if model is not None else []):
        if item.get("infohash") == infohash:
            return row, item
    return None


class Flows:
    """The user flows the test asked for, in order; see the module docstring."""

    def __init__(self, args, window):
        self.args = args
        self.window = window
        self.last_search = 0  # when the search was last typed (the GUI drops a repeat within 1 s)
        plan = [("popular", self.popular), ("downloads", self.downloads)]
        if args.search_word:
            plan.append(("search", self.search))
        if args.health_infohash:
            plan.append(("health", self.health))
            plan.append(("popular-checked", self.popular_checked))
        if args.tag:
            plan.append(("tag", self.tag))
        self.plan = plan
        REPORT.flows = {name: None for name, _ in plan}  # name -> {done_at, ...} or {failed}
        self.current = None  # (name, generator, deadline)

    def step(self):
        """Advances the current flow by one tick (starts the next when it is done)."""
        while True:
            if self.current is None:
                if not self.plan:
                    return
                name, flow = self.plan.pop(0)
                log(f"flow {name}: start")
                self.current = (name, flow(), now() + FLOW_TIMEOUT)
            name, gen, deadline = self.current
            try:
                if now() > deadline:
                    raise FlowFailed(f"did not finish within {FLOW_TIMEOUT} s")
                next(gen)
                return
            except StopIteration as done:
                REPORT.flows[name] = {"done_at": now(), **(done.value or {})}
                log(f"flow {name}: done {done.value or ''}")
            except FlowFailed as e:
                REPORT.flows[name] = {"failed": str(e), "at": now()}
                log(f"flow {name}: FAILED: {e}")
                # The flows after a failed one depend on it (same rows, same pages): stop here.
                self.plan.clear()
            self.current = None

    def screenshot(self, name):
        """Yields two ticks, so that the rows and dialogs just changed are painted in full, then
        saves the main window (with any dialog over it) as <shots-dir>/<name>.png."""
        yield
        yield
        path = os.path.join(self.args.shots_dir, f"{name}.png")
        if not self.window.grab().save(path, "PNG"):
            raise FlowFailed(f"could not save the screenshot {path}")
        REPORT.screenshots[name] = path
        log(f"screenshot {name}: {path}")

    def popular(self):
        """The Popular page loads at start-up (its request answered 200); a click shows it."""
        w = self.window
        yield from wait_until("the GUI to start its UI", lambda: w.ui_started)
        req = yield from wait_until(
            "the GUI's request of the popular torrents",
            lambda: request_seen("GET", "/metadata/torrents/popular", 0),
        )
        if req["status"] != 200:
            raise FlowFailed(f"GET {req['path']} answered {req['status']}")
        click(w.left_menu_button_popular)
        from tribler.gui.defs import PAGE_POPULAR

        yield from wait_until("the Popular page to be shown", lambda: w.stackedWidget.currentIndex() == PAGE_POPULAR)
        content = w.popular_page
        yield from wait_until("the popular torrents to load", lambda: content.model is not None and content.model.loaded)
        yield from self.screenshot("popular")
        return {"rows": len(content.model.data_items)}

    def downloads(self):
        """The downloads page shows the download the test added; selecting it makes the GUI poll
        its details routes, as a user looking at it would."""
        if not self.args.expect_infohash:
            return {}
        w = self.window
        click(w.left_menu_button_downloads)
        dl_list = w.downloads_list

        def row():
            for i in range(dl_list.topLevelItemCount()):
                item = dl_list.topLevelItem(i)
                info = getattr(item, "download_info", None)
                if info and info.get("infohash") == self.args.expect_infohash:
                    return item
            return None

        item = yield from wait_until(f"the downloads page to show {self.args.expect_infohash}", row)
        REPORT.download_row_seen_at = now()
        click(dl_list.viewport(), dl_list.visualItemRect(item).center())

        def selected():
            info = getattr(dl_list.currentItem(), "download_info", None) or {}
            return info.get("infohash") == self.args.expect_infohash

        yield from wait_until("the download to be selected", selected)
        log(f"downloads page: row {item.download_info.get('name')!r} ({item.download_info.get('status')}) selected")
        return {}

    def type_search(self, word):
        """Types `word` into the top search bar and presses Enter, as a user does."""
        from PyQt5.QtCore import Qt
        from PyQt5.QtTest import QTest

        self.last_search = now()
        bar = self.window.top_search_bar
        click(bar)
        bar.selectAll()
        QTest.keyClick(bar, Qt.Key_Backspace)
        QTest.keyClicks(bar, word)
        QTest.keyClick(bar, Qt.Key_Return)

    def search_row(self, infohash):
        content = self.window.search_results_page.results_page_content
        return find_row(content.model, infohash)

    def search(self):
        """Typing a word in the search bar finds the torrent the test added before."""
        from tribler.gui.defs import PAGE_SEARCH_RESULTS

        w = self.window
        since = now()
        self.type_search(self.args.search_word)
        yield from wait_until(
            "the search results page", lambda: w.stackedWidget.currentIndex() == PAGE_SEARCH_RESULTS
        )
        req = yield from wait_until(
            "the GUI's local search request", lambda: request_seen("GET", "/metadata/search/local", since)
        )
        found = yield from wait_until(
            f"a result row for {self.args.search_infohash}", lambda: self.search_row(self.args.search_infohash)
        )
        row, item = found
        yield from self.screenshot("search-results")
        log(f"search {self.args.search_word!r}: row {row} is {item['name']!r} ({req['path']})")
        return {"row": row, "name": item["name"], "request": req["path"]}

    def health(self):
        """A click on the row's health cell makes the GUI ask the core for a health check; the
        row then shows the seeders the tracker reported. Tribler 7.13.1's GUI does not apply the
        check's `channel_entity_updated` event to its table (nothing observes that topic), so,
        as its users do, the search is run again until the row shows the new counts."""
        from tribler.gui.widgets.tablecontentmodel import Column

        content = self.window.search_results_page.results_page_content
        ih = self.args.health_infohash
        row, item = yield from wait_until(f"the result row of {ih}", lambda: self.search_row(ih))
        if item.get("last_tracker_check"):
            raise FlowFailed(f"the row was checked before the click: {item}")
        view, model = content.content_table, content.model
        cell = model.index(row, model.column_position[Column.HEALTH])
        since = now()
        click(view.viewport(), view.visualRect(cell).center())
        path = f"/metadata/torrents/{ih}/health"
        req = yield from wait_until(f"the GUI's request {path}", lambda: request_seen("GET", path, since))
        if req["status"] != 200:
            raise FlowFailed(f"GET {req['path']} answered {req['status']}")
        log(f"health: the GUI asked {req['path']}; the row says {item.get('health')!r}")

        def counts_shown():
            found = self.search_row(ih)
            if found and found[1].get("last_tracker_check"):
                return found
            if now() - self.last_search >= 3:  # the GUI drops the same query within 1 s
                self.type_search(self.args.search_word)
            return None

        row, item = yield from wait_until("the row to show a tracker check", counts_shown, timeout=60)
        if item["num_seeders"] != self.args.health_seeders:
            raise FlowFailed(f"the row shows {item['num_seeders']} seeders, the tracker {self.args.health_seeders}")
        yield from self.screenshot("health")
        return {k: item[k] for k in ("num_seeders", "num_leechers", "last_tracker_check")}

    def popular_checked(self):
        """Once checked with seeders, the torrent is popular: the Popular page, reloaded (a second
        click on its menu button reloads it), lists it."""
        from tribler.gui.defs import PAGE_POPULAR

        w = self.window
        ih = self.args.health_infohash
        click(w.left_menu_button_popular)
        yield from wait_until("the Popular page to be shown", lambda: w.stackedWidget.currentIndex() == PAGE_POPULAR)
        since = now()
        click(w.left_menu_button_popular)
        req = yield from wait_until(
            "the GUI's new request of the popular torrents",
            lambda: request_seen("GET", "/metadata/torrents/popular", since),
        )
        if req["status"] != 200:
            raise FlowFailed(f"GET {req['path']} answered {req['status']}")
        row, item = yield from wait_until(f"a popular row for {ih}", lambda: find_row(w.popular_page.model, ih))
        yield from self.screenshot("popular-checked")
        return {"row": row, "num_seeders": item["num_seeders"]}

    def tag(self):
        """The row's "edit tags" button opens the tag editor; a tag typed there and saved is sent
        to the core and shown on the row."""
        from PyQt5.QtCore import Qt
        from PyQt5.QtTest import QTest

        from tribler.gui.defs import PAGE_SEARCH_RESULTS

        w = self.window
        content = w.search_results_page.results_page_content
        ih = self.args.tag_infohash
        view = content.content_table
        # Back to the search results, as a user would: the search again (the GUI drops the same
        # query within 1 s of the last one).
        yield from wait_until("a second since the last search", lambda: now() - self.last_search > 1.5)
        self.type_search(self.args.search_word)
        yield from wait_until(
            "the search results page", lambda: w.stackedWidget.currentIndex() == PAGE_SEARCH_RESULTS
        )

        def edit_button():
            found = self.search_row(ih)
            if not found:
                return None
            for index, rect in content.model.edit_tags_rects.items():
                if index.row() == found[0]:
                    return rect
            view.viewport().update()  # the rects are set when the row is painted
            return None

        rect = yield from wait_until(f"the edit-tags button of {ih}", edit_button)
        since = now()
        # A QRectF on a row without tags ("Be the first to suggest tags!"), else a QRect (the pen).
        center = rect.center()
        click(view.viewport(), center.toPoint() if hasattr(center, "toPoint") else center)

        def shown_editor():
            dialog = getattr(view, "add_tags_dialog", None)
            return dialog if dialog is not None and dialog.isVisible() else None

        dialog = yield from wait_until("the tag editor to show", shown_editor)
        path = f"/knowledge/{ih}/tag_suggestions"
        req = yield from wait_until(f"the GUI's request {path}", lambda: request_seen("GET", path, since))
        if req["status"] != 200:
            raise FlowFailed(f"GET {req['path']} answered {req['status']}")
        tags_input = dialog.dialog_widget.edit_tags_input
        QTest.keyClicks(tags_input, self.args.tag)
        yield from wait_until("the typed tag", lambda: self.args.tag in tags_input.get_entered_tags())
        yield from self.screenshot("tag-editor")
        click(dialog.dialog_widget.save_button)
        path = f"/knowledge/{ih}"
        req = yield from wait_until(f"the GUI's request PATCH {path}", lambda: request_seen("PATCH", path, since))
        if req["status"] != 200:
            raise FlowFailed(f"PATCH {req['path']} answered {req['status']}")

        def tag_on_row():
            found = self.search_row(ih)
            statements = found[1].get("statements", []) if found else []
            return any(s.get("predicate") == 101 and s.get("object") == self.args.tag for s in statements)

        yield from wait_until("the row to show the tag", tag_on_row)
        yield from wait_until("the tag editor to close", lambda: getattr(view, "add_tags_dialog", None) is None)
        yield from self.screenshot("tag-saved")
        return {"tag": self.args.tag}


# ---------------------------------------------------------------------------------------------
# The watcher: a QTimer in the GUI's own event loop, started once the main window exists.


class Watcher:
    def __init__(self, args, window, dialog_classes):
        from PyQt5.QtCore import QTimer

        self.args = args
        self.window = window
        self.dialog_classes = dialog_classes
        self.visible_seen = set()
        self.flows = Flows(args, window)
        self.timer = QTimer()
        self.timer.timeout.connect(self.tick)
        self.timer.start(500)

    def tick(self):
        try:
            self.check_dialogs()
            if REPORT.connected_at is not None:
                self.flows.step()
            elapsed = now()
            if REPORT.connected_at is None and elapsed > self.args.connect_timeout:
                log(f"the GUI did not connect within {self.args.connect_timeout} s")
                self.finish()
            elif elapsed >= self.args.duration:
                self.finish()
        except Exception:  # a bug of the launcher must end the run, not hide in Qt's loop
            REPORT.ui_problems.append(traceback.format_exc())
            self.finish()

    def check_dialogs(self):
        from PyQt5.QtWidgets import QApplication

        for w in QApplication.allWidgets():
            if not isinstance(w, self.dialog_classes) or not w.isVisible() or id(w) in self.visible_seen:
                continue
            self.visible_seen.add(id(w))
            entry = CREATED_DIALOGS.get(id(w))
            if entry is None:
                entry = {"t": now(), "class": type(w).__name__, "text": "(created before the hooks)"}
                REPORT.dialogs.append(entry)
            entry["seen_visible_at"] = now()
            log(f"dialog: a {type(w).__name__} is visible")
            if dialog_allowed(self.args, entry):
                # Listed, not a failure; closed as a user would, so the screenshot shows the page.
                w.close_dialog()
                log(f"dialog: closed it (an error answer of the allowed route {entry['request']})")

    def finish(self):
        self.timer.stop()
        from PyQt5.QtWidgets import QApplication

        erm = self.window.events_manager
        events_open = erm.reply is not None and erm.reply.isRunning()
        screen = QApplication.primaryScreen()
        shot_ok = screen is not None and screen.grabWindow(0).save(self.args.screenshot, "PNG")
        code = judge(self.args, events_open, shot_ok)
        sys.stdout.flush()
        sys.stderr.flush()
        # Leave without Tribler's shutdown sequence: the core is not ours to stop.
        os._exit(code)


def allowed_path(args, path):
    """Whether a non-200 answer on `path` is allowed (listed, not a failure)."""
    return any(path.startswith(p) for p in args.allow_non_200)


def dialog_allowed(args, entry):
    """A "Request error" dialog the GUI opened for a non-200 answer of an allowed route."""
    return "request" in entry and allowed_path(args, entry["request"])


def judge(args, events_open, shot_ok):
    """Prints the summary, writes the report, returns the exit code."""
    failures = []
    if REPORT.connected_at is None:
        failures.append("the GUI never received events_start from the core")
    if REPORT.own_core_attempts:
        failures.append(f"the GUI tried to start its own core: {REPORT.own_core_attempts}")
    if REPORT.connection_problems:
        failures.append(f"the events connection had problems: {REPORT.connection_problems}")
    if REPORT.connect_attempts > 1:
        failures.append(f"the GUI connected to /events {REPORT.connect_attempts} times (reconnects)")
    if REPORT.connected_at is not None and not events_open:
        failures.append("the events connection is not open at the end")
    if REPORT.reader_exceptions:
        first = REPORT.reader_exceptions[0]
        failures.append(
            f"the event reader raised {len(REPORT.reader_exceptions)} time(s), first at {first['t']} s: "
            f"{first['type']}: {first['message']} (buffer {first['buffer'][-80:]!r})"
        )
    bad_dialogs = [d for d in REPORT.dialogs if not dialog_allowed(args, d)]
    if bad_dialogs:
        shown = [f"{d['class']} at {d['t']} s {d.get('title', '')!r}: {d['text'][:200]}" for d in bad_dialogs]
        failures.append(f"dialogs opened: {shown}")
    if REPORT.errors:
        shown = [f"{e['source']} at {e['t']} s: {e['headline'][:200]}" for e in REPORT.errors]
        failures.append(f"errors reached Tribler's error handler: {shown}")
    if REPORT.ui_problems:
        failures.append(f"the launcher failed: {REPORT.ui_problems}")
    if args.expect_infohash and REPORT.download_row_seen_at is None:
        failures.append(f"the downloads page never showed download {args.expect_infohash}")
    for name, outcome in REPORT.flows.items():
        if outcome is None:
            failures.append(f"flow {name} did not run to its end within the run")
        elif "failed" in outcome:
            failures.append(f"flow {name} failed at {outcome['at']} s: {outcome['failed']}")
    if not shot_ok:
        failures.append(f"could not save the screenshot to {args.screenshot}")

    non_200 = {}
    for r in REPORT.requests:
        if r["status"] != 200:
            key = (r["method"], urlsplit(r["path"]).path, r["status"])
            non_200.setdefault(key, []).append(r["path"])
    not_allowed = [k for k in non_200 if not allowed_path(args, k[1])]
    if not_allowed:
        failures.append(f"non-200 answers outside the allowed prefixes {args.allow_non_200}: {not_allowed}")

    summary = REPORT.as_dict()
    summary.update(
        duration=args.duration,
        events_open_at_end=events_open,
        non_200=[
            {"method": m, "path": p, "status": s, "count": len(v), "example": v[0]} for (m, p, s), v in non_200.items()
        ],
        failures=failures,
    )
    with open(args.report, "w") as f:
        json.dump(summary, f, indent=1, default=str)

    by_route = {}
    for r in REPORT.requests:
        key = (r["method"], urlsplit(r["path"]).path, r["status"])
        by_route[key] = by_route.get(key, 0) + 1
    log(f"ran {now():.0f} s; events received: {REPORT.events}; connected at {REPORT.connected_at} s")
    log(f"requests by route ({len(REPORT.requests)} in all):")
    for (m, p, s), n in sorted(by_route.items()):
        item(f"{s:>4} {m:6} {p}  x{n}")
    log(f"non-200 answers ({len(non_200)} routes):")
    for (m, p, s), v in sorted(non_200.items()):
        allowed = "allowed" if (m, p, s) not in not_allowed else "NOT ALLOWED"
        item(f"{s:>4} {m:6} {p}  x{len(v)}  ({allowed}; e.g. {v[0]})")
    allowed_dialogs = [d for d in REPORT.dialogs if dialog_allowed(args, d)]
    log(f"dialogs for error answers of allowed routes ({len(allowed_dialogs)}, closed by the launcher):")
    for d in allowed_dialogs:
        item(f"{d['class']} {d.get('title', '')!r} for {d['request']}")
    log("flows:")
    for name, outcome in REPORT.flows.items():
        item(f"{name}: {outcome}")
    log(f"screenshots: {REPORT.screenshots}; of the screen at the end: {args.screenshot if shot_ok else 'none'}")
    if failures:
        log("FAILED:")
        for f in failures:
            item(f"- {f}")
        return 1
    log(
        "PASSED: connected the whole time; no event-reader exception; no dialog but those listed "
        "for error answers of allowed routes"
    )
    return 0


def main():
    args = parse_args()
    log(f"Tribler GUI against the core on port {os.environ.get('CORE_API_PORT')}, for {args.duration} s")
    attach_to_external_core()
    hook_event_stream()
    hook_requests()
    dialog_classes = hook_dialogs_and_errors()

    from tribler.gui.tribler_window import TriblerWindow

    def start_watching(orig):
        def hooked(self, *a, **kw):
            orig(self, *a, **kw)
            self._shoal_watcher = Watcher(args, self, dialog_classes)

        return hooked

    wrap(TriblerWindow, "__init__", start_watching)

    from tribler.run import main as tribler_main

    sys.argv = ["tribler"]
    tribler_main()
    # The GUI's loop ended before the watcher decided: that is a failure of its own.
    log("the GUI exited before the end of the run")
    REPORT.ui_problems.append("the GUI exited by itself")
    sys.exit(1)


if __name__ == "__main__":
    main()
