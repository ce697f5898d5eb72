/**
 * Guest RAM's bytes. On a WebAssembly.Memory with the CPU's state area after it
 * (src/cpu/wasm/arena.ts) when both fit 4 GiB and the host gives one, so that the wasm back
 * end of compiled blocks reads and writes guest RAM directly; else a plain buffer (the JS
 * back end only: the 4095 MiB machine). Either way zero-filled, and the host commits a page
 * when it is first written.
 */
import { arenaPages, arenaRam } from "../cpu/wasm/arena.js";

/** A zero-filled RAM of `bytes` bytes (a multiple of 4 KiB). */
export function allocRam(bytes: number): Uint8Array {
  const pages = arenaPages(bytes);
  if (typeof WebAssembly === "object" && pages > 0) {
    try {
      return arenaRam(new WebAssembly.Memory({ initial: pages, maximum: pages }), bytes);
    } catch {
      // No room for another wasm memory (address space): a plain buffer, the JS back end.
    }
  }
  return new Uint8Array(bytes);
}
