/**
 * tsxen in a web page, without the page: one machine with dom0 and one guest domain, run in
 * slices of guest time so the page stays responsive between them. Knows no DOM and imports
 * nothing of Node.js (test/web.test.ts bundles it for the browser and runs it in a bare
 * JavaScript context to hold it to that); web/main.ts is the page around it.
 */
import { SHUTDOWN_NAMES, Shutdown } from "../src/public/xen.js";
import { ConsoleFeed } from "../src/tools/console_feed.js";
import { launchDomain } from "../src/tools/launch.js";
import { ABI_NAMES, type AbiName, abiByName } from "../src/xen/abi.js";
import { Hypervisor } from "../src/xen/hypervisor.js";

export { ABI_NAMES, type AbiName };

export interface WebBootOptions {
  /** The guest kernel: an ELF with a __xen_guest section. */
  image: Uint8Array;
  name: string;
  memoryMiB: number;
  machineMemoryMiB: number;
  cmdline: string;
  abi: string;
  /** The guest's console output (domain 1's CONSOLEIO_write and console ring). */
  onConsole: (bytes: Uint8Array) => void;
  /** The hypervisor's own messages. */
  onLog: (line: string) => void;
}

/** How a run ended, in words for the status line (null while the guest runs on). */
export type Ending = { ok: boolean; text: string } | null;

export class WebMachine {
  readonly hv: Hypervisor;
  readonly domainId: number;
  private readonly keyboard: ConsoleFeed;
  private ended: Ending = null;

  /** Builds the machine and boots the guest; throws an Error naming what is wrong. */
  constructor(opts: WebBootOptions) {
    const abi = abiByName(opts.abi);
    if (abi === null)
      throw new Error(`the interface revision must be one of ${ABI_NAMES.join(", ")}, not "${opts.abi}"`);
    this.hv = new Hypervisor({
      memoryMiB: opts.machineMemoryMiB,
      onConsole: (_d, bytes) => opts.onConsole(bytes),
      onLog: opts.onLog,
    });
    const { domain } = launchDomain(this.hv, {
      name: opts.name,
      image: opts.image,
      memoryMiB: opts.memoryMiB,
      cmdline: opts.cmdline,
      abi: opts.abi as AbiName,
    });
    this.domainId = domain.id;
    this.keyboard = new ConsoleFeed(this.hv);
  }

  /** Guest time so far, in nanoseconds. */
  get guestNs(): number {
    return this.hv.nowNs();
  }

  /** Instructions the CPU has retired, all domains together. */
  get retired(): number {
    return this.hv.cpu.retired;
  }

  /** Keyboard input for the guest's console (CONSOLEIO_read), kept until the ring has room. */
  input(bytes: Uint8Array): void {
    this.keyboard.push(bytes);
  }

  /**
   * Runs until guest time limitNs (at once when it is already past); returns how the run
   * ended, or null when it goes on.
   */
  runUntil(limitNs: number): Ending {
    if (this.ended !== null) return this.ended;
    this.keyboard.pump();
    if (limitNs <= this.hv.nowNs()) return null;
    const r = this.hv.run(limitNs);
    switch (r.kind) {
      case "time-limit":
        return null;
      case "shutdown":
        this.ended = {
          ok: r.reason === Shutdown.poweroff,
          text: `domain ${r.domain.id} shut down: ${SHUTDOWN_NAMES[r.reason] ?? `reason ${r.reason}`}`,
        };
        break;
      case "crashed":
        this.ended = { ok: false, text: `domain ${r.domain.id} (${r.domain.name}) crashed: ${r.why}` };
        break;
      case "idle":
        this.ended = { ok: false, text: `stopped: ${r.why}` };
        break;
    }
    return this.ended;
  }
}
