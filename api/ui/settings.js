/**
 * The settings the daemon really implements, grouped as Tribler groups them. Each change is
 * posted on its own, so the daemon's 400 message shows next to the field it is about. Settings
 * the daemon has no effect for (seeding rules, a PEX switch, anonymity) are not offered.
 */

import { call } from "./api.js";
import { h, replace } from "./dom.js";

const KIB = 1024;

/** Groups of fields: section, key, label, kind, and a hint. */
const GROUPS = [
  {
    title: "Connection",
    fields: [{ section: "libtorrent", key: "port", label: "Peer port", kind: "port", hint: "0 picks a free port; used from the next start" }],
  },
  {
    title: "Rates",
    fields: [
      { section: "libtorrent", key: "max_download_rate", label: "Download limit (KiB/s)", kind: "rate", hint: "0 is unlimited" },
      { section: "libtorrent", key: "max_upload_rate", label: "Upload limit (KiB/s)", kind: "rate", hint: "0 is unlimited" },
    ],
  },
  {
    title: "Folders",
    fields: [{ section: "download_defaults", key: "saveas", label: "Default download folder", kind: "text" }],
  },
  {
    title: "Discovery",
    fields: [
      { section: "libtorrent", key: "dht", label: "DHT (find peers without trackers)", kind: "bool", hint: "from the next start" },
      { section: "libtorrent", key: "lsd", label: "Local service discovery (peers on the LAN)", kind: "bool", hint: "from the next start" },
    ],
  },
];

/** What the form shows for a stored value, and back. */
const KINDS = {
  port: { show: (v) => (v === null || v === undefined ? "" : String(v)), read: (s) => (s.trim() === "" ? null : Number(s)) },
  rate: { show: (v) => String(Math.round((Number(v) || 0) / KIB)), read: (s) => Math.round(Number(s) * KIB) },
  text: { show: (v) => String(v ?? ""), read: (s) => s },
  bool: { show: (v) => Boolean(v), read: (b) => b },
};

/** The settings page. */
export class SettingsPage {
  constructor({ notify }) {
    this.notify = notify;
    this.inputs = [];
    this.root = h("section", { class: "settings", "aria-labelledby": "settings-title" }, h("h2", { id: "settings-title", text: "Settings" }));
    this.form = h("form", { id: "settings-form", onsubmit: (ev) => { ev.preventDefault(); this.save(); } });
    this.status = h("p", { role: "status", id: "settings-status" });
    this.root.append(this.form);
  }

  async load() {
    const answer = await call("GET", "/settings");
    const tree = answer?.settings || {};
    this.inputs = [];
    const groups = GROUPS.map((g) =>
      h("fieldset", {}, h("legend", { text: g.title }), g.fields.map((f) => this.field(f, tree[f.section]?.[f.key]))),
    );
    replace(
      this.form,
      groups,
      h("p", { class: "hint", text: "Seeding rules, a PEX switch and anonymity are not offered: the daemon does not implement them." }),
      h("div", { class: "buttons" }, h("button", { type: "submit", class: "primary", id: "settings-save" }, "Save")),
      this.status,
    );
  }

  field(f, value) {
    const id = `set-${f.section}-${f.key}`;
    const kind = KINDS[f.kind];
    const error = h("span", { class: "error", id: `${id}-error`, role: "alert" });
    const input =
      f.kind === "bool"
        ? h("input", { type: "checkbox", id, checked: kind.show(value), "aria-describedby": `${id}-error` })
        : h("input", { type: f.kind === "text" ? "text" : "number", id, value: kind.show(value), "aria-describedby": `${id}-error`, step: 1 });
    const shown = () => (f.kind === "bool" ? input.checked : input.value);
    this.inputs.push({ f, input, error, initial: shown(), shown });
    return h("div", { class: f.kind === "bool" ? "field check" : "field" },
      f.kind === "bool" ? [input, h("label", { for: id, text: f.label })] : [h("label", { for: id, text: f.label }), input],
      f.hint ? h("span", { class: "hint", text: f.hint }) : null,
      error);
  }

  /** Posts each changed field; a refusal stays next to its field. */
  async save() {
    let saved = 0;
    let failed = 0;
    for (const item of this.inputs) {
      item.error.textContent = "";
      const now = item.shown();
      if (now === item.initial) continue;
      const value = KINDS[item.f.kind].read(now);
      try {
        await call("POST", "/settings", { [item.f.section]: { [item.f.key]: value } });
        item.initial = now;
        saved += 1;
      } catch (e) {
        item.error.textContent = e.message;
        failed += 1;
      }
    }
    this.status.textContent = failed ? `${failed} setting(s) refused; see the messages above.` : saved ? "Saved." : "Nothing changed.";
  }
}
