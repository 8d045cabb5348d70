/**
 * The Shoal web UI: signs in, then shows the downloads (kept current by `/events` and
 * polling), a download's details, the player, search and popular torrents, and the settings. Pages are chosen by the
 * address's `#fragment`, so the back button and bookmarks work.
 */

import { onUnauthorized } from "./api.js";
import { ensureSignedIn, forget, signIn } from "./auth.js";
import { byId, replace } from "./dom.js";
import { DownloadsPage } from "./downloads.js";
import { AddDialog, acceptDrops } from "./add.js";
import { Details } from "./details.js";
import { play } from "./player.js";
import { SearchPage } from "./search.js";
import { SettingsPage } from "./settings.js";
import { banner, follow, poll } from "./live.js";

/** How often `/downloads` is polled. */
const POLL_MS = 1000;

const main = byId("main");
let view = null;
let signingIn = null;

/** Shows a message in the banner for a while. */
function notify(message, kind = "info") {
  banner(message, kind);
  setTimeout(() => {
    if (byId("banner").textContent === message) banner("");
  }, 6000);
}

const downloads = new DownloadsPage({ onOpen: (ih) => (location.hash = `#download/${ih}`), notify });
const adder = new AddDialog({
  notify,
  onAdded: () => {
    notify("Added.");
    refreshNow();
  },
});
const settings = new SettingsPage({ notify });
const search = new SearchPage({ notify, onAdded: () => notify("Added.") });

/** Runs the view's refresh; errors other than a refused key go to the banner. */
async function refreshView() {
  if (!view || signingIn) return;
  try {
    await view.refresh();
    if (byId("banner").className === "error-refresh") banner("");
  } catch (e) {
    if (e.status !== 401) banner(e.message, "error-refresh");
  }
}

const poller = { poke() {} };
function refreshNow() {
  poller.poke();
}

/** Shows the page the address names. */
async function route() {
  const hash = location.hash || "#downloads";
  const page = hash === "#settings" || hash === "#search" ? hash.slice(1) : "downloads";
  for (const name of ["downloads", "search", "settings"]) byId(`nav-${name}`).toggleAttribute("aria-current", name === page);
  const detail = /^#download\/([0-9a-f]{40})$/.exec(hash);
  if (detail) {
    const d = new Details(detail[1], { onClose: () => (location.hash = "#downloads"), onPlay: play, notify });
    view = { refresh: () => d.refresh() };
    replace(main, d.root);
  } else if (hash === "#search") {
    view = null;
    replace(main, search.root);
    try {
      await search.load();
    } catch (e) {
      if (e.status !== 401) banner(e.message, "error");
    }
    return;
  } else if (hash === "#settings") {
    view = null;
    replace(main, settings.root);
    try {
      await settings.load();
    } catch (e) {
      if (e.status !== 401) banner(e.message, "error");
    }
    return;
  } else {
    view = downloads;
    replace(main, downloads.root);
  }
  refreshNow();
}

/** A refused key (it changed, or was revoked): ask again, then carry on where we were. */
async function reauthenticate() {
  if (signingIn) return;
  forget();
  signingIn = signIn(main, "The daemon refused the API key (it may have changed). Enter the current key.");
  await signingIn;
  signingIn = null;
  route();
}

async function start() {
  await ensureSignedIn(main);
  byId("add-open").hidden = false;
  byId("sign-out").hidden = false;
  byId("add-open").addEventListener("click", () => adder.open());
  byId("sign-out").addEventListener("click", () => {
    forget();
    location.reload();
  });
  onUnauthorized(reauthenticate);
  acceptDrops(adder);
  window.addEventListener("hashchange", route);
  Object.assign(poller, poll(refreshView, POLL_MS));
  follow((event) => {
    if (event.topic === "events_start" || event.topic === "torrent_finished") refreshNow();
    if (event.topic === "torrent_finished") notify(`Finished: ${event.kwargs?.name ?? ""}`);
  });
  await route();
}

start().catch((e) => banner(`The UI could not start: ${e.message}`, "error"));
