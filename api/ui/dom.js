/** Small DOM helpers: elements are built from parts, never from HTML strings. */

/**
 * An element: `h("button", {type: "button", onclick: f}, "Pause")`. Attributes starting with
 * `on` become listeners, `class`/`text`/`hidden`/`value`/`checked` set properties, `null` and
 * `false` are left out; children are nodes or strings.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "text") el.textContent = value;
    else if (["hidden", "value", "checked", "disabled", "indeterminate"].includes(name)) el[name] = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** The element with this id. */
export const byId = (id) => document.getElementById(id);

/** Sets an element's text only when it changed (cheap updates of large tables). */
export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}
