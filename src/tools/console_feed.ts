/**
 * Keyboard bytes on their way into a guest's console: `tsxen run`'s stdin, the browser page's
 * keyboard, `xm console`. A guest that talks over its control interface (a 2005 XenLinux domU)
 * gets them as CMSG_CONSOLE requests on its rx ring, as xend's console controller sent them;
 * any other guest reads them from Xen's console input ring (CONSOLEIO_read). Neither holds
 * much (8 messages of 60 bytes; a 128-byte ring that drops what does not fit, as a serial line
 * would), so the bytes wait here and go in as room frees.
 */
import { CMSG_CONSOLE_DATA, Cmsg, ControlMsg } from "../public/control_if.js";
import { CONSOLE_RING, type Hypervisor } from "../xen/hypervisor.js";
import type { ControlInterface } from "./control_if.js";

export class ConsoleFeed {
  private readonly pending: number[] = [];

  /** control: the guest's control interface now (it changes when the domain is rebuilt). */
  constructor(
    private readonly hv: Hypervisor,
    private readonly control: () => ControlInterface | null = () => null,
  ) {}

  /** Queues bytes (they reach the guest at the next pump). */
  push(bytes: Uint8Array): void {
    for (const b of bytes) this.pending.push(b);
  }

  /** Bytes not yet given to the guest. */
  get queued(): number {
    return this.pending.length;
  }

  /** Moves what the guest has room for to it; call between slices of guest time. */
  pump(): void {
    if (this.pending.length === 0) return;
    const ctrl = this.control();
    // The guest has used its control interface: that is where its console listens.
    if (ctrl?.active) {
      while (this.pending.length > 0 && ctrl.freeRequestSlots > 0) {
        const chunk = Uint8Array.from(this.pending.splice(0, ControlMsg.MSG_MAX));
        void ctrl.request(Cmsg.CONSOLE, CMSG_CONSOLE_DATA, chunk);
      }
      return;
    }
    const room = CONSOLE_RING - this.hv.consoleQueued();
    if (room > 0) this.hv.consoleInput(Uint8Array.from(this.pending.splice(0, room)));
  }
}
