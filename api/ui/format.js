/** How figures read: sizes, rates, durations, percentages, and Tribler's status names. */

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** `1536` → `"1.5 KiB"`. */
export function size(bytes) {
  if (!Number.isFinite(bytes) || bytes < 0) return "–";
  let i = 0;
  let v = bytes;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${UNITS[i]}`;
}

/** Bytes per second, `""` when idle. */
export function rate(bps) {
  return bps > 0 ? `${size(bps)}/s` : "";
}

/** Seconds left, `""` when unknown or done. */
export function eta(seconds) {
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds >= 1e7) return "";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

/** `0.4567` → `"45.7%"`. */
export function percent(fraction) {
  const f = Math.max(0, Math.min(1, Number(fraction) || 0));
  return f === 1 ? "100%" : `${(f * 100).toFixed(1)}%`;
}

/** The names Tribler's GUI shows for the API's status codes. */
const STATUS_NAMES = [
  "Allocating disk space",
  "Waiting for check",
  "Checking",
  "Downloading",
  "Seeding",
  "Stopped",
  "Stopped on error",
  "Waiting for metadata",
  "Building circuits",
  "Finding exit nodes",
];

/** A download's status as Tribler names it (`error` added for a stop on error). */
export function status(dl) {
  const name = STATUS_NAMES[dl.status_code] ?? String(dl.status ?? "");
  return dl.status_code === 6 && dl.error ? `${name}: ${dl.error}` : name;
}

/** Tribler's download filters, by status code. */
export const FILTERS = {
  all: () => true,
  downloading: (dl) => dl.status_code === 3,
  completed: (dl) => dl.status_code === 4 || (dl.progress >= 1 && dl.status_code === 5),
  active: (dl) => [0, 1, 2, 3, 4, 7].includes(dl.status_code),
  inactive: (dl) => [5, 6, 8, 9].includes(dl.status_code),
};

/** Whether a file name is something the browser can play. */
export function playable(name) {
  return /\.(mp4|m4v|webm|ogv|mkv|mov|mp3|m4a|ogg|oga|opus|flac|wav|aac)$/i.test(name);
}
