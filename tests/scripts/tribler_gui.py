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

After --duration seconds (or at once when the GUI has not connected within --connect-timeout)
it saves a screenshot of the screen, writes the JSON report, prints a summary and exits: 0 if
the GUI connected, stayed connected, opened no dialog, hit no exception, showed the download
and got no non-200 answer outside the --allow-non-200 path prefixes; 1 otherwise.

Usage (under Xvfb): python tribler_gui.py --duration 600 --report R.json --screenshot S.png
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
# The watcher: a QTimer in the GUI's own event loop, started once the main window exists.


class Watcher:
    def __init__(self, args, window, dialog_classes):
        from PyQt5.QtCore import QTimer

        self.args = args
        self.window = window
        self.dialog_classes = dialog_classes
        self.visible_seen = set()
        self.row_selected = False
        self.timer = QTimer()
        self.timer.timeout.connect(self.tick)
        self.timer.start(500)

    def tick(self):
        try:
            self.check_dialogs()
            if REPORT.connected_at is not None:
                self.drive_downloads_page()
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

    def drive_downloads_page(self):
        """Shows the downloads page and selects the expected download, so the GUI also polls
        the details routes (as a user looking at it would)."""
        if self.row_selected or not self.args.expect_infohash:
            return
        w = self.window
        if not w.ui_started:
            return
        if not w.left_menu_button_downloads.isChecked():
            w.clicked_menu_button_downloads()
        dl_list = w.downloads_list
        for i in range(dl_list.topLevelItemCount()):
            item = dl_list.topLevelItem(i)
            info = getattr(item, "download_info", None)
            if info and info.get("infohash") == self.args.expect_infohash:
                REPORT.download_row_seen_at = now()
                dl_list.setCurrentItem(item)
                item.setSelected(True)
                self.row_selected = True
                log(f"downloads page: row {info.get('name')!r} ({info.get('status')}) selected")
                return

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
    log(f"screenshot: {args.screenshot if shot_ok else 'none'}")
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
