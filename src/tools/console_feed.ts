/**
 * Keyboard bytes on their way into Xen's console input ring (CONSOLEIO_read). The ring drops
 * what it cannot hold, as a serial line would, so a terminal's bytes wait here and go in as
 * room frees: `tsxen run`'s stdin and the browser page's keyboard.
 */
import { CONSOLE_RING, type Hypervisor } from "../xen/hypervisor.js";

export class ConsoleFeed {
  private readonly pending: number[] = [];

  constructor(private readonly hv: Hypervisor) {}

  /** Queues bytes (they reach the ring at the next pump). */
  push(bytes: Uint8Array): void {
    for (const b of bytes) this.pending.push(b);
  }

  /** Moves what the ring has room for into it; call between slices of guest time. */
  pump(): void {
    const room = CONSOLE_RING - this.hv.consoleQueued();
    if (room > 0 && this.pending.length > 0)
      this.hv.consoleInput(Uint8Array.from(this.pending.splice(0, room)));
  }
}
