/**
 * Adding a torrent: a magnet or URL (previewed by `/torrentinfo`, which fetches a magnet's
 * metadata from its peers) or a .torrent file (picker or drag-and-drop, previewed here). The
 * preview shows the files, each with a box to leave it out, and the destination. While a
 * magnet's files are looked for (up to a minute when it has no peers), the magnet can be added
 * at once without choosing files, or the looking stopped. Anonymity hops are not offered: the
 * daemon has no tunnels.
 */

import { call, withQuery } from "./api.js";
import { torrentFiles, NotATorrent } from "./bencode.js";
import { h, replace } from "./dom.js";
import * as fmt from "./format.js";

/** Decodes `/torrentinfo`'s answer: hex of the torrent's JSON form. */
function decodeMetainfo(hex) {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i += 1) bytes[i] = parseInt(hex.substr(i * 2, 2), 16);
  const meta = JSON.parse(new TextDecoder().decode(bytes));
  const info = meta.info || {};
  const name = info.name || "torrent";
  const files = Array.isArray(info.files)
    ? info.files.map((f, index) => ({ index, path: (f.path || []).join("/"), size: f.length || 0 }))
    : [{ index: 0, path: name, size: info.length || 0 }];
  return { name, files: files.filter((f) => !f.path.startsWith(".pad/")) };
}

/** The add dialog; `open()` shows it, `openFile(file)` previews a file given to the page. */
export class AddDialog {
  constructor({ onAdded, notify }) {
    this.onAdded = onAdded;
    this.notify = notify;
    this.uri = h("input", { id: "add-uri", type: "text", placeholder: "magnet:?xt=urn:btih:… or https://…/x.torrent", autocomplete: "off" });
    this.file = h("input", { id: "add-file", type: "file", accept: ".torrent,application/x-bittorrent", onchange: () => this.file.files[0] && this.openFile(this.file.files[0]) });
    this.message = h("p", { id: "add-message", role: "alert", class: "error" });
    this.preview = h("div", { id: "add-preview" });
    this.destination = h("input", { id: "add-destination", type: "text", autocomplete: "off" });
    this.submit = h("button", { type: "button", class: "primary", id: "add-submit", disabled: true, onclick: () => this.add() }, "Add");
    this.stop = h("button", { type: "button", id: "add-stop", hidden: true, onclick: () => this.stopLooking() }, "Stop looking");
    this.dialog = h(
      "dialog",
      { class: "card add", "aria-labelledby": "add-title" },
      h("h2", { id: "add-title", text: "Add a torrent" }),
      h(
        "form",
        { class: "row", onsubmit: (ev) => { ev.preventDefault(); this.previewUri(); } },
        h("label", { for: "add-uri", text: "Magnet link or URL" }),
        this.uri,
        h("button", { type: "submit", id: "add-fetch" }, "Show files"),
      ),
      h("div", { class: "row" }, h("label", { for: "add-file", text: "Or a .torrent file (you can also drop it on the page)" }), this.file),
      h("div", { class: "row" }, this.message, this.stop),
      this.preview,
      h("div", { class: "row" }, h("label", { for: "add-destination", text: "Destination folder" }), this.destination),
      h("div", { class: "buttons" }, h("button", { type: "button", onclick: () => this.dialog.close() }, "Cancel"), this.submit),
    );
    this.dialog.addEventListener("close", () => this.stopLooking(false));
    document.body.append(this.dialog);
  }

  /** Shows the dialog, empty, with the default destination. */
  async open() {
    this.reset();
    if (!this.dialog.open) this.dialog.showModal();
    this.uri.focus();
    try {
      const settings = await call("GET", "/settings");
      if (!this.destination.value) this.destination.value = settings?.settings?.download_defaults?.saveas ?? "";
    } catch (e) {
      this.say(e.message);
    }
  }

  reset() {
    this.stopLooking(false);
    this.source = null;
    this.uri.value = "";
    this.file.value = "";
    this.say("");
    replace(this.preview);
    this.submit.disabled = true;
  }

  say(text, kind = "error") {
    this.message.textContent = text;
    this.message.className = kind;
    this.message.setAttribute("role", kind === "error" ? "alert" : "status");
  }

  /** Shows that a magnet's files are being looked for (the Stop button, Add labelled for it). */
  looking(on) {
    this.stop.hidden = !on;
    this.submit.textContent = on ? "Add without the file list" : "Add";
  }

  /** Stops looking for a magnet's files (`tell`: say so); the magnet can still be added. */
  stopLooking(tell = true) {
    if (!this.abort) return;
    this.abort.abort();
    this.abort = null;
    this.looking(false);
    if (tell) this.say("Stopped looking for the torrent's files. You can still add the magnet: it downloads once peers are found.", "info");
  }

  /** Previews a .torrent the user picked or dropped. */
  async openFile(file) {
    if (!this.dialog.open) await this.open();
    this.stopLooking(false);
    this.say("");
    replace(this.preview);
    this.submit.disabled = true;
    const bytes = await file.arrayBuffer();
    try {
      this.show(torrentFiles(bytes));
      this.source = { bytes };
    } catch (e) {
      if (!(e instanceof NotATorrent)) throw e;
      this.say(`${file.name} is not a torrent file (${e.message}).`);
    }
  }

  /**
   * Previews the magnet or URL typed. A magnet can be added at once while its files are looked
   * for, and still after its peers never answered.
   */
  async previewUri() {
    const uri = this.uri.value.trim();
    if (!uri) return this.say("Enter a magnet link or a URL.");
    this.stopLooking(false);
    replace(this.preview);
    this.submit.disabled = true;
    this.source = null;
    const magnet = uri.startsWith("magnet:");
    const abort = new AbortController();
    this.abort = abort;
    if (magnet) {
      this.say("Looking for the torrent's files among its peers (up to a minute). You can add it now without choosing files, or stop looking.", "info");
      this.source = { uri };
      this.submit.disabled = false;
      this.looking(true);
    } else {
      this.say("Fetching the torrent…", "info");
    }
    try {
      const answer = await call("GET", withQuery("/torrentinfo", { uri }), undefined, { signal: abort.signal });
      if (this.abort !== abort) return;
      this.looking(false);
      this.show(decodeMetainfo(answer.metainfo));
      this.source = { uri };
      this.say(answer.download_exists ? "This torrent is already in the downloads." : "");
    } catch (e) {
      if (e.name === "AbortError" || this.abort !== abort) return;
      this.looking(false);
      if (magnet && e.status !== 400) {
        this.say(`No peer sent the torrent's files (${e.message}). You can still add the magnet: it downloads once peers are found.`);
      } else {
        this.source = null;
        this.submit.disabled = true;
        this.say(e.message);
      }
    } finally {
      if (this.abort === abort) this.abort = null;
    }
  }

  /** The file list with a box per file. */
  show({ name, files }) {
    this.boxes = files.map((f) => h("input", { type: "checkbox", checked: true, "data-index": f.index, id: `add-f${f.index}`, "aria-label": `Download ${f.path}` }));
    const total = files.reduce((s, f) => s + f.size, 0);
    replace(
      this.preview,
      h("h3", { text: `${name} — ${fmt.size(total)}` }),
      h("ul", { class: "files" }, files.map((f, i) => h("li", {}, this.boxes[i], " ", h("label", { for: `add-f${f.index}`, text: f.path }), h("span", { class: "size", text: fmt.size(f.size) })))),
    );
    this.submit.disabled = false;
  }

  async add() {
    const selected = (this.boxes || []).filter((b) => b.checked).map((b) => Number(b.dataset.index));
    if (this.boxes && this.boxes.length && !selected.length) return this.say("Select at least one file.");
    const destination = this.destination.value.trim() || undefined;
    const selection = this.boxes && selected.length < this.boxes.length ? selected : undefined;
    this.submit.disabled = true;
    // Adding a magnet ends the looking; the daemon's download takes the search over.
    this.stopLooking(false);
    try {
      let answer;
      if (this.source?.bytes) {
        const query = { destination, selected_files: selection?.join(",") };
        answer = await call("PUT", withQuery("/downloads", query), this.source.bytes);
      } else if (this.source?.uri) {
        answer = await call("PUT", "/downloads", { uri: this.source.uri, destination, selected_files: selection });
      } else {
        return;
      }
      this.dialog.close();
      this.onAdded(answer?.infohash);
    } catch (e) {
      this.say(e.message);
      this.submit.disabled = false;
    }
  }
}

/** Lets a .torrent be dropped anywhere on the page. */
export function acceptDrops(dialog) {
  const hint = document.getElementById("drop-hint");
  let depth = 0;
  const hasFiles = (ev) => [...(ev.dataTransfer?.types || [])].includes("Files");
  document.addEventListener("dragenter", (ev) => {
    if (!hasFiles(ev)) return;
    depth += 1;
    hint.hidden = false;
  });
  document.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) hint.hidden = true;
  });
  document.addEventListener("dragover", (ev) => {
    if (hasFiles(ev)) ev.preventDefault();
  });
  document.addEventListener("drop", (ev) => {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    depth = 0;
    hint.hidden = true;
    const file = ev.dataTransfer.files[0];
    if (file) dialog.openFile(file);
  });
}
