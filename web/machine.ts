/**
 * tsxen in a web page, without the page: one machine with dom0 and one guest domain, run in
 * slices of guest time so the page stays responsive between them. Knows no DOM and imports
 * nothing of Node.js (test/web.test.ts bundles it for the browser and runs it in a bare
 * JavaScript context to hold it to that); web/main.ts is the page around it.
 */
import { Shutdown } from "../src/public/xen.js";
import { GuestSession } from "../src/tools/session.js";
import { ABI_NAMES, type AbiName, abiByName } from "../src/xen/abi.js";
import { Hypervisor } from "../src/xen/hypervisor.js";

export { ABI_NAMES, type AbiName };

export interface WebBootOptions {
  /** The guest kernel: an ELF with a __xen_guest section. */
  image: Uint8Array;
  /** An initial ramdisk (initrd), given to the guest as its start_info module. */
  ramdisk?: Uint8Array;
  name: string;
  memoryMiB: number;
  machineMemoryMiB: number;
  cmdline: string;
  abi: string;
  /** The guest's console output: console_io writes and its control interface's CMSG_CONSOLE. */
  onConsole: (bytes: Uint8Array) => void;
  /** The hypervisor's own messages, and the toolstack's (a reboot restarting the guest). */
  onLog: (line: string) => void;
}

/** How a run ended, in words for the status line (null while the guest runs on). */
export type Ending = { ok: boolean; text: string } | null;

export class WebMachine {
  readonly hv: Hypervisor;
  private readonly session: GuestSession;
  private ended: Ending = null;
  private idle = false;

  /**
   * Builds the machine and boots the guest as `tsxen run` does (a GuestSession: its control
   * interface served, a reboot rebuilding it); throws an Error naming what is wrong.
   */
  constructor(opts: WebBootOptions) {
    const abi = abiByName(opts.abi);
    if (abi === null)
      throw new Error(`the interface revision must be one of ${ABI_NAMES.join(", ")}, not "${opts.abi}"`);
    this.hv = new Hypervisor({
      memoryMiB: opts.machineMemoryMiB,
      onConsole: (_d, bytes) => opts.onConsole(bytes),
      onLog: opts.onLog,
    });
    this.session = new GuestSession(this.hv, {
      name: opts.name,
      image: opts.image,
      module: opts.ramdisk,
      memoryMiB: opts.memoryMiB,
      cmdline: opts.cmdline,
      abi: opts.abi as AbiName,
      onConsole: opts.onConsole,
      onNote: opts.onLog,
    });
  }

  /** The guest's domain id now (a reboot gives it a new one). */
  get domainId(): number {
    return this.session.domain.id;
  }

  /** Times the guest was rebuilt after rebooting. */
  get restarts(): number {
    return this.session.restarts;
  }

  /** Guest time so far, in nanoseconds. */
  get guestNs(): number {
    return this.hv.nowNs();
  }

  /** Instructions the CPU has retired, all domains together. */
  get retired(): number {
    return this.hv.cpu.retiredTotal;
  }

  /**
   * Keyboard input for the guest's console, kept until it has room: over its control
   * interface once it uses one (XenLinux), else Xen's console ring (CONSOLEIO_read).
   */
  input(bytes: Uint8Array): void {
    this.session.input(bytes);
  }

  /**
   * Runs until guest time limitNs (at once when it is already past); returns how the run
   * ended, or null when it goes on. A guest waiting for the keyboard with nothing else due
   * is not an ending here: the page goes on waiting for keys.
   */
  runUntil(limitNs: number): Ending {
    if (this.ended !== null) return this.ended;
    const end = this.session.runUntil(limitNs);
    this.idle = end?.kind === "idle";
    if (end === null || end.kind === "idle") return null;
    this.ended = { ok: end.kind === "shutdown" && end.reason === Shutdown.poweroff, text: end.text };
    return this.ended;
  }

  /** The last run found the guest blocked with nothing due: only the keyboard can wake it. */
  get waiting(): boolean {
    return this.idle;
  }
}
