/**
 * Playing a file while it downloads: an HTML5 player fed by `/downloads/{ih}/stream/{i}`,
 * which answers byte ranges and fetches the pieces at the read position first, so seeking works
 * before the download is complete.
 */

import { h } from "./dom.js";

const AUDIO = /\.(mp3|m4a|ogg|oga|opus|flac|wav|aac)$/i;

/** Opens the player on file `file` (`{index, name}`) of download `ih`. */
export function play(ih, file) {
  const media = h(AUDIO.test(file.name) ? "audio" : "video", {
    id: "player-media",
    controls: true,
    autoplay: true,
    preload: "auto",
    src: `/downloads/${ih}/stream/${file.index}`,
  });
  const error = h("p", { class: "error", role: "alert" });
  media.addEventListener("error", () => {
    const code = media.error?.code;
    error.textContent =
      code === 4 ? "The browser cannot play this kind of file." : "The stream stopped; the file may not be available yet.";
  });
  const dialog = h(
    "dialog",
    { class: "card player", "aria-label": `Playing ${file.name}` },
    h("h2", { text: file.name }),
    media,
    error,
    h("div", { class: "buttons" }, h("button", { type: "button", id: "player-close", onclick: () => dialog.close() }, "Close")),
  );
  dialog.addEventListener("close", () => {
    media.pause();
    media.removeAttribute("src");
    media.load();
    dialog.remove();
  });
  document.body.append(dialog);
  dialog.showModal();
  return media;
}
