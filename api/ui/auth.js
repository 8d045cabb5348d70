/**
 * Signing in: the key is checked against the daemon, then kept in the `api_key` cookie (as
 * Tribler 8's UI keeps it), which the browser sends with every API call, `/events` and the
 * player's stream. `/ui?key=…` (the link the daemon prints) signs in directly.
 */

import { call } from "./api.js";
import { h, replace } from "./dom.js";

const COOKIE = "api_key";

/** The key in the cookie, or "". */
export function storedKey() {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === COOKIE) return decodeURIComponent(rest.join("="));
  }
  return "";
}

function keep(key) {
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = `${COOKIE}=${encodeURIComponent(key)}; Path=/; SameSite=Strict; Max-Age=31536000${secure}`;
}

/** Forgets the key. */
export function forget() {
  document.cookie = `${COOKIE}=; Path=/; SameSite=Strict; Max-Age=0`;
}

/** Whether the daemon accepts `key`; rejects when the daemon cannot be reached. */
export async function check(key) {
  try {
    await call("GET", "/settings", undefined, { headers: { "x-api-key": key } });
    return true;
  } catch (e) {
    if (e.status === 401) return false;
    throw e;
  }
}

/** Takes `?key=` out of the address (it must not stay in the history) and returns it. */
export function keyFromAddress() {
  const url = new URL(location.href);
  const key = url.searchParams.get("key");
  if (key === null) return null;
  url.searchParams.delete("key");
  history.replaceState(null, "", url.pathname + url.search + url.hash);
  return key;
}

/** Shows the sign-in form in `main` with `message`; resolves once a key is accepted. */
export function signIn(main, message = "") {
  return new Promise((resolve) => {
    const input = h("input", { id: "key", name: "key", type: "password", autocomplete: "current-password", required: true });
    const error = h("p", { id: "sign-in-error", class: "error", role: "alert", text: message });
    const form = h(
      "form",
      { class: "card sign-in", onsubmit: submit },
      h("h2", { text: "Sign in" }),
      h("p", { text: "Enter the daemon's API key: it is in triblerd.conf ([api] key), and in the link the daemon printed at start-up." }),
      h("label", { for: "key", text: "API key" }),
      input,
      error,
      h("button", { type: "submit", class: "primary", id: "sign-in-submit" }, "Sign in"),
    );
    async function submit(ev) {
      ev.preventDefault();
      const key = input.value.trim();
      error.textContent = "";
      try {
        if (await check(key)) {
          keep(key);
          resolve(key);
        } else {
          error.textContent = "Wrong API key: the daemon refused it.";
          input.select();
        }
      } catch (e) {
        error.textContent = e.message;
      }
    }
    replace(main, form);
    input.focus();
  });
}

/** Makes sure a working key is in the cookie: from the address, the cookie, or the form. */
export async function ensureSignedIn(main) {
  const given = keyFromAddress();
  let message = "";
  if (given !== null) {
    try {
      if (await check(given)) {
        keep(given);
        return;
      }
      message = "Wrong API key in the link: the daemon refused it.";
    } catch (e) {
      message = e.message;
    }
  } else if (storedKey()) {
    try {
      if (await check(storedKey())) return;
      message = "The daemon no longer accepts the saved key (it may have changed).";
    } catch (e) {
      message = e.message;
    }
  }
  await signIn(main, message);
}
