/**
 * Search and popular torrents, from the daemon's metadata store (`/metadata/search/local`,
 * `/metadata/search/completions`, `/metadata/torrents/popular`): a search box with
 * completions, rows with their health as last checked, and adding a result in one click.
 */

import { call, withQuery } from "./api.js";
import { h, replace } from "./dom.js";
import * as fmt from "./format.js";

/** How long typing must pause before completions are asked for. */
const COMPLETION_DELAY_MS = 200;

/** The seeders and leechers of an entry, or that nobody checked it yet. */
function health(entry) {
  if (!entry.last_tracker_check) return "not checked";
  return `${entry.num_seeders} seeders, ${entry.num_leechers} leechers`;
}

/** The search page. */
export class SearchPage {
  constructor({ notify, onAdded }) {
    this.notify = notify;
    this.onAdded = onAdded;
    this.input = h("input", { type: "search", id: "search-text", list: "search-completions", autocomplete: "off", oninput: () => this.complete() });
    this.completions = h("datalist", { id: "search-completions" });
    this.title = h("h2", { id: "search-title", text: "Popular torrents" });
    this.results = h("tbody", { id: "search-results" });
    this.message = h("p", { class: "empty", id: "search-message", role: "status" });
    this.root = h(
      "section",
      { class: "search", "aria-labelledby": "search-title" },
      h(
        "form",
        { class: "row", role: "search", onsubmit: (ev) => { ev.preventDefault(); this.search(); } },
        h("label", { for: "search-text", text: "Search torrents" }),
        this.input,
        this.completions,
        h("button", { type: "submit", class: "primary", id: "search-submit" }, "Search"),
      ),
      this.title,
      h("div", { class: "table-wrap" }, h("table", { id: "search-table" }, h("thead", {}, h("tr", {}, ["Name", "Category", "Size", "Health", ""].map((t) => h("th", { scope: "col", text: t })))), this.results)),
      this.message,
    );
  }

  /** Shows the popular torrents (the page's start). */
  async load() {
    const answer = await call("GET", "/metadata/torrents/popular");
    this.show("Popular torrents", answer?.results || [], "No popular torrents yet: nothing has been checked.");
  }

  complete() {
    clearTimeout(this.timer);
    const q = this.input.value.trim();
    if (!q) return;
    this.timer = setTimeout(async () => {
      try {
        const answer = await call("GET", withQuery("/metadata/search/completions", { q }));
        replace(this.completions, (answer?.completions || []).map((c) => h("option", { value: c })));
      } catch (e) {
        if (e.status !== 401) this.notify(e.message, "error");
      }
    }, COMPLETION_DELAY_MS);
  }

  async search() {
    const text = this.input.value.trim();
    if (!text) return this.load();
    try {
      const answer = await call("GET", withQuery("/metadata/search/local", { txt_filter: text, first: 1, last: 100, include_total: 1 }));
      this.show(`Results for “${text}”`, answer?.results || [], "Nothing found.");
    } catch (e) {
      if (e.status !== 401) this.message.textContent = e.message;
    }
  }

  show(title, entries, empty) {
    this.title.textContent = title;
    this.message.textContent = entries.length ? "" : empty;
    replace(this.results, entries.map((e) => h("tr", { "data-infohash": e.infohash },
      h("td", { class: "name", text: e.name }),
      h("td", { text: e.category || "" }),
      h("td", { text: fmt.size(e.size) }),
      h("td", { text: health(e) }),
      h("td", {}, h("button", { type: "button", class: "add", "aria-label": `Add ${e.name}`, onclick: (ev) => this.add(e, ev.currentTarget) }, "Add")))));
  }

  /** Adds an entry as a magnet link into the default folder. */
  async add(entry, button) {
    button.disabled = true;
    const uri = `magnet:?xt=urn:btih:${entry.infohash}&dn=${encodeURIComponent(entry.name)}`;
    try {
      await call("PUT", "/downloads", { uri });
      button.textContent = "Added";
      this.onAdded(entry.infohash);
    } catch (e) {
      button.disabled = false;
      this.notify(e.message, "error");
    }
  }
}
