/**
 * One download in detail: its files as a tree with a box each (unticking one stops its
 * download), a play button on media files, its peers, its trackers with their status, a bar of
 * the pieces it has, and its destination with a move.
 */

import { call, withQuery } from "./api.js";
import { h, replace, setText } from "./dom.js";
import * as fmt from "./format.js";

/** The bits of a base64 bitfield, most significant first, as booleans. */
function bits(base64, count) {
  const out = new Array(count).fill(false);
  if (!base64) return out;
  const raw = atob(base64);
  for (let i = 0; i < count; i += 1) {
    const byte = raw.charCodeAt(i >> 3);
    out[i] = ((byte >> (7 - (i & 7))) & 1) === 1;
  }
  return out;
}

/** Files as nested folders: `{dirs: Map(name → node), files: [file]}`. */
function tree(files) {
  const root = { dirs: new Map(), files: [] };
  for (const f of files) {
    const parts = f.name.split("/");
    let node = root;
    for (const dir of parts.slice(0, -1)) {
      if (!node.dirs.has(dir)) node.dirs.set(dir, { dirs: new Map(), files: [] });
      node = node.dirs.get(dir);
    }
    node.files.push({ ...f, leaf: parts[parts.length - 1] });
  }
  return root;
}

/** The files of a folder node, recursively. */
function allFiles(node) {
  return [...node.files, ...[...node.dirs.values()].flatMap(allFiles)];
}

/** The details view of one download; `refresh()` reloads it, `close()` leaves it. */
export class Details {
  constructor(ih, { onClose, onPlay, notify }) {
    this.ih = ih;
    this.onPlay = onPlay;
    this.notify = notify;
    this.title = h("h2", { id: "details-title", text: ih });
    this.summary = h("p", { class: "summary" });
    this.canvas = h("canvas", { id: "pieces", width: 800, height: 16, role: "img", "aria-label": "Pieces downloaded" });
    this.files = h("div", { id: "details-files" });
    this.peers = h("tbody");
    this.trackers = h("tbody");
    this.dest = h("input", { id: "move-dest", type: "text", autocomplete: "off" });
    this.moveMessage = h("span", { role: "status" });
    this.root = h(
      "section",
      { class: "details", "aria-labelledby": "details-title" },
      h("div", { class: "toolbar" }, h("button", { type: "button", id: "details-back", onclick: onClose }, "← Downloads"), this.title),
      this.summary,
      this.canvas,
      h("h3", { text: "Files" }),
      this.files,
      h("h3", { text: "Destination" }),
      h(
        "form",
        { class: "row", onsubmit: (ev) => { ev.preventDefault(); this.move(); } },
        h("label", { for: "move-dest", text: "Folder" }),
        this.dest,
        h("button", { type: "submit", id: "move-submit" }, "Move"),
        this.moveMessage,
      ),
      h("h3", { text: "Peers" }),
      h("div", { class: "table-wrap" }, h("table", { id: "peers" }, h("thead", {}, h("tr", {}, ["Address", "Client", "Flags", "Down", "Up", "Has"].map((t) => h("th", { scope: "col", text: t })))), this.peers)),
      h("h3", { text: "Trackers" }),
      h("div", { class: "table-wrap" }, h("table", { id: "trackers" }, h("thead", {}, h("tr", {}, ["URL", "Status", "Peers"].map((t) => h("th", { scope: "col", text: t })))), this.trackers)),
    );
    this.fileKey = "";
  }

  async refresh() {
    const [list, files] = await Promise.all([
      call("GET", withQuery("/downloads", { infohash: this.ih, get_peers: 1, get_pieces: 1 })),
      call("GET", `/downloads/${this.ih}/files`),
    ]);
    const dl = list?.downloads?.[0];
    if (!dl) {
      replace(this.summary, "This download is gone.");
      return;
    }
    setText(this.title, dl.name || dl.infohash);
    setText(this.summary, `${fmt.status(dl)} · ${fmt.percent(dl.progress)} of ${fmt.size(dl.size)} · ↓ ${fmt.rate(dl.speed_down) || "0"} ↑ ${fmt.rate(dl.speed_up) || "0"}`);
    if (document.activeElement !== this.dest && this.dest.value !== dl.destination && !this.destEdited) this.dest.value = dl.destination;
    this.drawPieces(bits(dl.pieces, dl.total_pieces || 0));
    this.showFiles(Array.isArray(files?.files) ? files.files : []);
    replace(this.peers, (dl.peers || []).map((p) => h("tr", {},
      h("td", { text: `${p.ip}:${p.port}` }),
      h("td", { text: p.extended_version || "" }),
      h("td", { text: flags(p) }),
      h("td", { text: fmt.rate(p.downrate) }),
      h("td", { text: fmt.rate(p.uprate) }),
      h("td", { text: fmt.percent(p.completed) }))));
    replace(this.trackers, (dl.trackers || []).map((t) => h("tr", {}, h("td", { text: t.url }), h("td", { text: t.status }), h("td", { text: String(t.peers ?? "") }))));
  }

  drawPieces(have) {
    const ctx = this.canvas.getContext("2d");
    const w = this.canvas.width;
    const style = getComputedStyle(this.canvas);
    ctx.fillStyle = style.getPropertyValue("--missing").trim() || "#ccc";
    ctx.fillRect(0, 0, w, this.canvas.height);
    if (!have.length) return;
    ctx.fillStyle = style.getPropertyValue("--have").trim() || "#2a7";
    for (let x = 0; x < w; x += 1) {
      const from = Math.floor((x * have.length) / w);
      const to = Math.max(from + 1, Math.floor(((x + 1) * have.length) / w));
      let n = 0;
      for (let i = from; i < to; i += 1) if (have[i]) n += 1;
      if (n) {
        ctx.globalAlpha = n / (to - from);
        ctx.fillRect(x, 0, 1, this.canvas.height);
      }
    }
    ctx.globalAlpha = 1;
  }

  showFiles(files) {
    const key = JSON.stringify(files.map((f) => [f.index, f.included]));
    this.lastFiles = files;
    if (key === this.fileKey) {
      for (const f of files) {
        const pct = this.files.querySelector(`[data-progress="${f.index}"]`);
        if (pct) setText(pct, fmt.percent(f.progress));
      }
      return;
    }
    this.fileKey = key;
    replace(this.files, this.folder(tree(files), ""));
  }

  folder(node, prefix) {
    const items = [];
    for (const [name, child] of node.dirs) {
      const inside = allFiles(child);
      const on = inside.filter((f) => f.included).length;
      const box = h("input", { type: "checkbox", checked: on === inside.length, indeterminate: on > 0 && on < inside.length, "aria-label": `Download the folder ${prefix}${name}`, onchange: () => this.select(inside.map((f) => f.index), box.checked) });
      items.push(h("li", { class: "dir" }, h("details", { open: true }, h("summary", {}, box, " ", `${name}/`), this.folder(child, `${prefix}${name}/`))));
    }
    for (const f of node.files) {
      const box = h("input", { type: "checkbox", checked: f.included, id: `file-${f.index}`, "data-file": f.index, "aria-label": `Download ${f.name}`, onchange: () => this.select([f.index], box.checked) });
      const play = fmt.playable(f.name) ? h("button", { type: "button", class: "play", "data-play": f.index, "aria-label": `Play ${f.name}`, onclick: () => this.onPlay(this.ih, f) }, "▶ Play") : null;
      items.push(h("li", { class: "file" }, box, " ", h("label", { for: `file-${f.index}`, text: f.leaf }), h("span", { class: "size", text: fmt.size(f.size) }), h("span", { class: "pct", "data-progress": f.index, text: fmt.percent(f.progress) }), play));
    }
    return h("ul", { class: "tree" }, items);
  }

  async select(indices, on) {
    const chosen = new Set(this.lastFiles.filter((f) => f.included).map((f) => f.index));
    for (const i of indices) if (on) chosen.add(i); else chosen.delete(i);
    try {
      await call("PATCH", `/downloads/${this.ih}`, { selected_files: [...chosen].sort((a, b) => a - b) });
    } catch (e) {
      this.notify(e.message, "error");
    }
    this.fileKey = "";
    await this.refresh().catch((e) => this.notify(e.message, "error"));
  }

  async move() {
    this.moveMessage.textContent = "Moving…";
    try {
      await call("PATCH", `/downloads/${this.ih}`, { state: "move_storage", dest_dir: this.dest.value.trim() });
      this.moveMessage.textContent = "Moved.";
    } catch (e) {
      this.moveMessage.textContent = e.message;
    }
  }
}

/** libtorrent-style peer flags: who is interested, choked, a seed. */
function flags(p) {
  return [p.dinterested && !p.dchoked ? "D" : p.dinterested ? "d" : "", p.uinterested && !p.uchoked ? "U" : p.uinterested ? "u" : "", p.seed ? "S" : "", p.direction === "R" ? "O" : "I"].join("");
}
