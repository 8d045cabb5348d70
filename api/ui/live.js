/**
 * Keeping the page current: `/events` (server-sent events) for what happens, and polling of
 * `/downloads` for the figures. When the daemon goes away (a restart), the page says so and
 * reconnects on its own; `onevent` is called with every event so views can refresh at once.
 * The state of the stream is on `<body data-events="open|lost">` (for styles and tests).
 */

import { byId } from "./dom.js";

/** How long after losing `/events` a new connection is tried. */
const RECONNECT_MS = 2000;

/** The banner at the top of the page: a message, or hidden with `""`. */
export function banner(message, kind = "warning") {
  const el = byId("banner");
  el.textContent = message;
  el.className = kind;
  el.hidden = !message;
}

/** The event stream, reopened whenever it closes; `stop()` ends it. */
export function follow(onevent) {
  let source = null;
  let timer = null;
  let stopped = false;
  let lost = false;
  function open() {
    source = new EventSource("/events", { withCredentials: true });
    source.onopen = () => {
      document.body.dataset.events = "open";
      if (lost) banner("Reconnected to the daemon.", "info");
      lost = false;
      setTimeout(() => {
        if (!lost) banner("");
      }, 1500);
    };
    source.onmessage = (ev) => {
      let event;
      try {
        event = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (event.topic === "tribler_shutdown_state") banner("The daemon is shutting down…");
      onevent(event);
    };
    source.onerror = () => {
      if (stopped) return;
      lost = true;
      document.body.dataset.events = "lost";
      banner("Lost the connection to the daemon; reconnecting…");
      // The browser retries by itself unless the stream was refused; then we do.
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        clearTimeout(timer);
        timer = setTimeout(open, RECONNECT_MS);
      }
    };
  }
  open();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      source.close();
    },
  };
}

/** Calls `task()` every `ms`, never two at once; `poke()` runs it now. */
export function poll(task, ms) {
  let running = false;
  let again = false;
  let timer = null;
  let stopped = false;
  async function tick() {
    clearTimeout(timer);
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      await task();
    } finally {
      running = false;
      if (!stopped) timer = setTimeout(tick, again ? 0 : ms);
      again = false;
    }
  }
  tick();
  return {
    poke: tick,
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
