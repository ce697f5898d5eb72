/**
 * Xen's console "ring" (semantics.md §9.2): a linear buffer of CONSOLE_RING_SIZE bytes holding
 * the hypervisor's own printk output, which stops recording once full and is drained (and
 * optionally cleared) by DOM0_READCONSOLE.
 */
import { CONSOLE_RING_SIZE } from "../public/dom0_ops.js";

/** Xen's printk prefix once boot is under way. */
const PRINTK_PREFIX = "(XEN) ";

export class ConsoleRing {
  readonly buf = new Uint8Array(CONSOLE_RING_SIZE);
  len = 0;
  private startOfLine = true;

  /** printk: each line prefixed with "(XEN) "; bytes beyond the buffer are lost. */
  printk(message: string): void {
    const text = message.endsWith("\n") ? message : `${message}\n`;
    for (const ch of text) {
      if (this.startOfLine) this.put(PRINTK_PREFIX);
      this.put(ch);
      this.startOfLine = ch === "\n";
    }
  }

  private put(s: string): void {
    for (let i = 0; i < s.length; i++) {
      if (this.len < CONSOLE_RING_SIZE) this.buf[this.len++] = s.charCodeAt(i) & 0xff;
    }
  }

  /** The first min(len, count) bytes (read_console_ring). */
  read(count: number): Uint8Array {
    return this.buf.slice(0, Math.min(this.len, count >>> 0));
  }

  clear(): void {
    this.len = 0;
  }
}
