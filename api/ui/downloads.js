/**
 * The downloads page: a live table (name, size, progress, status, speeds, peers, ETA, ratio)
 * with Tribler's filters, sorting, a text filter, and actions on the selected rows. Rows are
 * kept per info-hash and only changed cells are written, so a thousand downloads stay smooth.
 */

import { call, ApiError } from "./api.js";
import { h, replace, setText } from "./dom.js";
import * as fmt from "./format.js";

/** The columns: header, sort key, and how a cell shows a download. */
const COLUMNS = [
  { id: "name", title: "Name", key: (d) => d.name.toLowerCase() },
  { id: "size", title: "Size", key: (d) => d.size, text: (d) => fmt.size(d.size) },
  { id: "progress", title: "Progress", key: (d) => d.progress },
  { id: "status", title: "Status", key: (d) => fmt.status(d), text: (d) => fmt.status(d) },
  { id: "down", title: "Down", key: (d) => d.speed_down, text: (d) => fmt.rate(d.speed_down) },
  { id: "up", title: "Up", key: (d) => d.speed_up, text: (d) => fmt.rate(d.speed_up) },
  {
    id: "peers",
    title: "Peers (seeds)",
    key: (d) => d.num_connected_peers + d.num_connected_seeds,
    text: (d) => `${d.num_connected_peers} (${d.num_connected_seeds})`,
  },
  { id: "eta", title: "ETA", key: (d) => (d.eta > 0 ? d.eta : Infinity), text: (d) => fmt.eta(d.eta) },
  { id: "ratio", title: "Ratio", key: (d) => d.all_time_ratio, text: (d) => (Number(d.all_time_ratio) || 0).toFixed(2) },
];

/** The page; `open(ih)` shows a download's details. */
export class DownloadsPage {
  constructor({ onOpen, notify }) {
    this.onOpen = onOpen;
    this.notify = notify;
    this.rows = new Map();
    this.downloads = [];
    this.selected = new Set();
    this.filter = "all";
    this.text = "";
    this.sort = { id: "name", desc: false };
    this.order = "";
    this.build();
  }

  build() {
    const filters = Object.keys(fmt.FILTERS).map((f) =>
      h("button", { type: "button", "data-filter": f, "aria-pressed": String(f === this.filter), onclick: () => this.setFilter(f) }, f[0].toUpperCase() + f.slice(1)),
    );
    this.filterButtons = filters;
    this.search = h("input", { type: "search", id: "text-filter", placeholder: "Filter by name", "aria-label": "Filter downloads by name", oninput: () => this.setText(this.search.value) });
    this.selectAll = h("input", { type: "checkbox", "aria-label": "Select all shown downloads", onchange: () => this.toggleAll() });
    const action = (label, id, f) => h("button", { type: "button", id, disabled: true, onclick: f }, label);
    this.actions = [
      action("Resume", "action-resume", () => this.patchSelected({ state: "resume" })),
      action("Pause", "action-pause", () => this.patchSelected({ state: "stop" })),
      action("Recheck", "action-recheck", () => this.patchSelected({ state: "recheck" })),
      action("Remove…", "action-remove", () => this.confirmRemove()),
    ];
    this.heads = COLUMNS.map((c) =>
      h("th", { scope: "col", "aria-sort": "none", "data-col": c.id }, h("button", { type: "button", class: "sort", onclick: () => this.setSort(c.id) }, c.title)),
    );
    this.tbody = h("tbody", { id: "downloads-body" });
    this.empty = h("p", { class: "empty", id: "downloads-empty", text: "No downloads yet: add a magnet link or a .torrent file." });
    this.count = h("span", { class: "count", "aria-live": "polite" });
    this.root = h(
      "section",
      { class: "downloads", "aria-label": "Downloads" },
      h("div", { class: "toolbar" }, h("div", { class: "filters", role: "group", "aria-label": "Show" }, filters), this.search),
      h("div", { class: "toolbar actions", role: "group", "aria-label": "Selected downloads" }, this.actions, this.count),
      h("div", { class: "table-wrap" }, h("table", { id: "downloads" }, h("thead", {}, h("tr", {}, h("th", { class: "check" }, this.selectAll), this.heads)), this.tbody)),
      this.empty,
    );
    this.updateHeads();
  }

  /** Loads `/downloads` and updates the table. */
  async refresh() {
    const answer = await call("GET", "/downloads");
    this.downloads = Array.isArray(answer?.downloads) ? answer.downloads : [];
    this.render();
  }

  setFilter(f) {
    this.filter = f;
    for (const b of this.filterButtons) b.setAttribute("aria-pressed", String(b.dataset.filter === f));
    this.render();
  }

  setText(t) {
    this.text = t.trim().toLowerCase();
    this.render();
  }

  setSort(id) {
    this.sort = this.sort.id === id ? { id, desc: !this.sort.desc } : { id, desc: false };
    this.updateHeads();
    this.render();
  }

  updateHeads() {
    for (const th of this.heads) {
      th.setAttribute("aria-sort", th.dataset.col === this.sort.id ? (this.sort.desc ? "descending" : "ascending") : "none");
    }
  }

  /** The downloads shown, in order. */
  shown() {
    const keep = fmt.FILTERS[this.filter];
    const list = this.downloads.filter((d) => keep(d) && (!this.text || d.name.toLowerCase().includes(this.text)));
    const col = COLUMNS.find((c) => c.id === this.sort.id);
    const sign = this.sort.desc ? -1 : 1;
    const keyed = list.map((d) => [col.key(d), d]);
    keyed.sort(([a], [b]) => (a < b ? -sign : a > b ? sign : 0));
    return keyed.map(([, d]) => d);
  }

  /** Updates the table; its main-thread time is the `downloads-render` measure, and the first
   * render with rows is the `downloads-first-render` mark (Performance API). */
  render() {
    const start = performance.now();
    this.renderRows();
    performance.measure("downloads-render", { start });
    if (!this.rendered && this.downloads.length) {
      this.rendered = true;
      performance.mark("downloads-first-render");
    }
  }

  renderRows() {
    const shown = this.shown();
    const live = new Set(this.downloads.map((d) => d.infohash));
    for (const [ih, row] of this.rows) {
      if (!live.has(ih)) {
        row.tr.remove();
        this.rows.delete(ih);
        this.selected.delete(ih);
      }
    }
    for (const d of shown) this.row(d).update(d, this.selected.has(d.infohash));
    const order = shown.map((d) => d.infohash).join(",");
    if (order !== this.order) {
      this.order = order;
      replace(this.tbody, shown.map((d) => this.rows.get(d.infohash).tr));
    }
    this.empty.hidden = this.downloads.length > 0;
    this.updateSelection();
  }

  row(d) {
    let row = this.rows.get(d.infohash);
    if (!row) {
      row = new Row(d.infohash, this);
      this.rows.set(d.infohash, row);
    }
    return row;
  }

  toggle(ih, on) {
    if (on) this.selected.add(ih);
    else this.selected.delete(ih);
    this.updateSelection();
  }

  toggleAll() {
    const on = this.selectAll.checked;
    for (const ih of this.order ? this.order.split(",") : []) {
      this.toggle(ih, on);
      this.rows.get(ih).check.checked = on;
    }
  }

  updateSelection() {
    const n = this.selected.size;
    for (const b of this.actions) b.disabled = n === 0;
    setText(this.count, n ? `${n} selected` : `${this.downloads.length} download${this.downloads.length === 1 ? "" : "s"}`);
    const shown = this.order ? this.order.split(",").length : 0;
    this.selectAll.checked = n > 0 && n >= shown;
    this.selectAll.indeterminate = n > 0 && n < shown;
  }

  async patchSelected(change) {
    await this.each((ih) => call("PATCH", `/downloads/${ih}`, change));
  }

  async each(action) {
    const failures = [];
    for (const ih of [...this.selected]) {
      try {
        await action(ih);
      } catch (e) {
        if (!(e instanceof ApiError) || e.status !== 401) failures.push(e.message);
      }
    }
    if (failures.length) this.notify(failures.join(" "), "error");
    await this.refresh().catch(() => {});
  }

  confirmRemove() {
    const n = this.selected.size;
    const withData = h("input", { type: "checkbox", id: "remove-data" });
    const dialog = h(
      "dialog",
      { class: "card", "aria-labelledby": "remove-title" },
      h("h2", { id: "remove-title", text: `Remove ${n} download${n === 1 ? "" : "s"}?` }),
      h("p", {}, withData, " ", h("label", { for: "remove-data", text: "Also delete the downloaded files" })),
      h(
        "div",
        { class: "buttons" },
        h("button", { type: "button", onclick: () => dialog.close() }, "Cancel"),
        h("button", { type: "button", class: "danger", id: "remove-confirm", onclick: () => { dialog.close(); this.removeSelected(withData.checked); } }, "Remove"),
      ),
    );
    dialog.addEventListener("close", () => dialog.remove());
    document.body.append(dialog);
    dialog.showModal();
  }

  async removeSelected(removeData) {
    await this.each((ih) => call("DELETE", `/downloads/${ih}`, { remove_data: removeData }));
  }
}

/** One row of the table and its cells. */
class Row {
  constructor(ih, page) {
    this.check = h("input", { type: "checkbox", "aria-label": "Select", onchange: () => page.toggle(ih, this.check.checked) });
    this.name = h("button", { type: "button", class: "link name", onclick: () => page.onOpen(ih) });
    this.bar = h("progress", { max: 1, value: 0 });
    this.pct = h("span", { class: "pct" });
    this.cells = {};
    const tds = COLUMNS.map((c) => {
      if (c.id === "name") return h("td", { class: "name" }, this.name);
      if (c.id === "progress") return h("td", { class: "progress" }, this.bar, this.pct);
      const td = h("td", { class: c.id, "data-label": c.title });
      this.cells[c.id] = td;
      return td;
    });
    this.tr = h("tr", { "data-infohash": ih }, h("td", { class: "check" }, this.check), tds);
  }

  update(d, selected) {
    setText(this.name, d.name || d.infohash);
    if (this.bar.value !== d.progress) this.bar.value = d.progress;
    setText(this.pct, fmt.percent(d.progress));
    for (const c of COLUMNS) if (c.text) setText(this.cells[c.id], c.text(d));
    this.check.checked = selected;
    const state = d.status_code === 6 ? "error" : d.status_code === 5 ? "stopped" : "";
    if (this.tr.dataset.state !== state) this.tr.dataset.state = state;
  }
}
