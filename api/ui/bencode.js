/**
 * Just enough bencode to show a dropped .torrent before it is added: its name, size and files.
 * The daemon parses it again, strictly, when it is added; this only previews.
 */

/** A torrent file that could not be read. */
export class NotATorrent extends Error {}

function decode(bytes) {
  let pos = 0;
  const text = new TextDecoder("utf-8", { fatal: false });
  function fail(what) {
    throw new NotATorrent(`${what} at byte ${pos}`);
  }
  function int(end) {
    const stop = bytes.indexOf(end, pos);
    if (stop < 0 || stop - pos > 20) fail("bad number");
    const digits = text.decode(bytes.subarray(pos, stop));
    if (!/^-?\d+$/.test(digits)) fail("bad number");
    pos = stop + 1;
    return Number(digits);
  }
  function value(depth) {
    if (depth > 64) fail("too deeply nested");
    if (pos >= bytes.length) fail("unexpected end");
    const c = bytes[pos];
    if (c === 0x69) {
      pos += 1;
      return int(0x65);
    }
    if (c === 0x6c || c === 0x64) {
      pos += 1;
      const items = [];
      while (bytes[pos] !== 0x65) {
        if (pos >= bytes.length) fail("unexpected end");
        items.push(value(depth + 1));
      }
      pos += 1;
      if (c === 0x6c) return items;
      const dict = {};
      for (let i = 0; i + 1 < items.length; i += 2) {
        if (!(items[i] instanceof Uint8Array)) fail("dictionary key is not a string");
        dict[text.decode(items[i])] = items[i + 1];
      }
      return dict;
    }
    if (c >= 0x30 && c <= 0x39) {
      const len = int(0x3a);
      if (pos + len > bytes.length) fail("string past the end");
      const s = bytes.subarray(pos, pos + len);
      pos += len;
      return s;
    }
    return fail("unexpected byte");
  }
  const v = value(0);
  if (pos !== bytes.length) fail("data after the end");
  return v;
}

const str = (b) => (b instanceof Uint8Array ? new TextDecoder().decode(b) : "");

/** `{name, files: [{index, path, size}]}` of a .torrent's bytes; throws `NotATorrent`. */
export function torrentFiles(buffer) {
  const root = decode(new Uint8Array(buffer));
  const info = root && root.info;
  if (!info || typeof info !== "object" || Array.isArray(info) || info instanceof Uint8Array) {
    throw new NotATorrent("there is no info dictionary");
  }
  const name = str(info.name) || "torrent";
  if (Array.isArray(info.files)) {
    const files = info.files.map((f, index) => ({
      index,
      path: (Array.isArray(f.path) ? f.path.map(str) : [str(f.path)]).join("/"),
      size: Number(f.length) || 0,
    }));
    return { name, files: files.filter((f) => !f.path.startsWith(".pad/")) };
  }
  if (typeof info.length === "number") return { name, files: [{ index: 0, path: name, size: info.length }] };
  throw new NotATorrent("the info dictionary lists no files");
}
