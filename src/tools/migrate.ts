/**
 * Live migration's page deltas (xm migrate --live, after xc_linux_save's pre-copy rounds).
 * The source sends a whole image first while the domain runs, then rounds of the pages that
 * changed since the last round, then pauses it and sends the last changed pages with the
 * header; the destination patches its copy and restores the result like a saved image (whose
 * SHA-256 it recomputes, so every check of restore still applies).
 *
 * A delta on the wire: u32 header length (0: none), the header's JSON, u32 page count, then
 * per page a u32 page index (into the image's page list) and its 4096 bytes.
 */
import type { ImageHeader } from "./save.js";
import { SaveError } from "./save.js";

const PAGE = 4096;

/** Indexes of the pages of next that differ from prev (two word-aligned bodies of the same page list). */
export function changedPages(prev: Uint8Array, next: Uint8Array): number[] {
  const changed: number[] = [];
  const a = new Int32Array(prev.buffer, prev.byteOffset, prev.byteLength >> 2);
  const b = new Int32Array(next.buffer, next.byteOffset, next.byteLength >> 2);
  for (let p = 0; p < next.length / PAGE; p++) {
    for (let i = p * 1024, end = i + 1024; i < end; i++) {
      if (a[i] !== b[i]) {
        changed.push(p);
        break;
      }
    }
  }
  return changed;
}

export function encodeDelta(header: ImageHeader | null, body: Uint8Array, pages: number[]): Uint8Array {
  const json = header === null ? new Uint8Array(0) : new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + pages.length * (4 + PAGE));
  const view = new DataView(out.buffer);
  view.setUint32(0, json.length, true);
  out.set(json, 4);
  let at = 4 + json.length;
  view.setUint32(at, pages.length, true);
  at += 4;
  for (const p of pages) {
    view.setUint32(at, p, true);
    out.set(body.subarray(p * PAGE, (p + 1) * PAGE), at + 4);
    at += 4 + PAGE;
  }
  return out;
}

/**
 * Applies a delta to body (a copy of the image's pages) and returns the header it carried,
 * or null. Throws SaveError, changing nothing, when the delta is malformed or names a page
 * the body does not have.
 */
export function applyDelta(body: Uint8Array, delta: Uint8Array): ImageHeader | null {
  const bad = (why: string): never => {
    throw new SaveError(`the migration delta is damaged: ${why}`);
  };
  const view = new DataView(delta.buffer, delta.byteOffset, delta.byteLength);
  if (delta.length < 8) bad("too short");
  const jsonLen = view.getUint32(0, true);
  if (8 + jsonLen > delta.length) bad("its header runs past its end");
  let header: ImageHeader | null = null;
  if (jsonLen > 0) {
    try {
      header = JSON.parse(new TextDecoder().decode(delta.subarray(4, 4 + jsonLen))) as ImageHeader;
    } catch {
      bad("its header is not JSON");
    }
  }
  const count = view.getUint32(4 + jsonLen, true);
  const start = 8 + jsonLen;
  if (delta.length !== start + count * (4 + PAGE))
    bad(`${count} pages do not fill its ${delta.length} bytes`);
  const pages = body.length / PAGE;
  for (let k = 0, at = start; k < count; k++, at += 4 + PAGE) {
    const p = view.getUint32(at, true);
    if (p >= pages) bad(`page ${p} is beyond the image's ${pages}`);
  }
  for (let k = 0, at = start; k < count; k++, at += 4 + PAGE) {
    const p = view.getUint32(at, true);
    body.set(delta.subarray(at + 4, at + 4 + PAGE), p * PAGE);
  }
  return header;
}
