/**
 * One guest on a machine of its own, as `tsxen run` and the web page run it: started the way
 * xend started a domain (startDomain: its control interface served, CMSG_CONSOLE output to the
 * console), keyboard input routed as xend's console did (ConsoleFeed), and when it stops its
 * on_poweroff / on_reboot / on_crash applied as xend applied them: "restart" rebuilds it from
 * the same kernel, ramdisk and command line, anything else ends the session. Like xend, a
 * domain that asks to restart again within 20 s (of guest time) of its last restart is not
 * restarted, so a guest that crashes or reboots at once does not loop for ever.
 * Imports nothing of Node.js (the web page runs it).
 */
import { SHUTDOWN_NAMES, Shutdown } from "../public/xen.js";
import type { Domain } from "../xen/domain.js";
import type { Hypervisor } from "../xen/hypervisor.js";
import type { ExitAction } from "./config.js";
import { ConsoleFeed } from "./console_feed.js";
import type { ControlInterface } from "./control_if.js";
import { dom0Of } from "./dom0.js";
import { type LaunchOptions, startDomain } from "./launch.js";
import { xcDomainDestroy } from "./xc.js";

/** xend's restart_delay: a second restart sooner than this after the last is refused. */
export const RESTART_DELAY_NS = 20e9;

export interface SessionOptions extends Omit<LaunchOptions, "controlChannel" | "paused"> {
  /** What to do when the guest stops; xm's defaults: destroy, restart, destroy. */
  onPoweroff?: ExitAction;
  onReboot?: ExitAction;
  onCrash?: ExitAction;
  /** The guest's console output (control interface and console_io alike). */
  onConsole: (bytes: Uint8Array) => void;
  /** The toolstack's own remarks (a restart, a broken control ring). */
  onNote: (line: string) => void;
  /**
   * Virtual devices (tsxen run's --disk / --vif): attached after each build (a throw fails the
   * build), detached before the domain is destroyed for a restart.
   */
  devices?: {
    attach(domain: Domain, control: ControlInterface | null): void;
    detach(domain: Domain): void;
  };
}

/** How a session ended (null from runUntil while it goes on). */
export type SessionEnd =
  /** The guest shut down with `reason` (Shutdown.*) and on_* did not restart it. */
  | { kind: "shutdown"; domain: Domain; reason: number; text: string }
  | { kind: "crashed"; domain: Domain; why: string; text: string }
  /** Not restarted though on_* says so: too soon after the last restart, or the build failed. */
  | { kind: "restart-refused"; domain: Domain; text: string }
  /** Nothing can happen until the outside world acts (no timer, no event due). */
  | { kind: "idle"; text: string };

export class GuestSession {
  private current: { domain: Domain; control: ControlInterface | null };
  private readonly keyboard: ConsoleFeed;
  private lastRestartNs: number | null = null;
  private ended: SessionEnd | null = null;
  /** Times the domain was rebuilt by on_* = restart. */
  restarts = 0;

  /** Builds and starts the guest; throws BuildError/ElfError/RangeError/XcError on bad input. */
  constructor(
    readonly hv: Hypervisor,
    private readonly opts: SessionOptions,
  ) {
    this.current = this.start();
    this.keyboard = new ConsoleFeed(hv, () => this.current.control);
  }

  get domain(): Domain {
    return this.current.domain;
  }

  get control(): ControlInterface | null {
    return this.current.control;
  }

  /** Keyboard bytes for the guest's console, kept until it has room for them. */
  input(bytes: Uint8Array): void {
    this.keyboard.push(bytes);
  }

  /** Keyboard bytes not yet taken by the guest. */
  get inputQueued(): number {
    return this.keyboard.queued;
  }

  /**
   * Runs until guest time limitNs; returns how the session ended, or null when it goes on
   * (the limit was reached, or the guest was restarted).
   */
  runUntil(limitNs: number): SessionEnd | null {
    if (this.ended !== null) return this.ended;
    this.keyboard.pump();
    if (limitNs <= this.hv.nowNs()) return null;
    let r = this.hv.run(limitNs);
    // Idle after taking what it had room for: the rest of the typing goes in as room frees.
    while (r.kind === "idle" && this.keyboard.queued > 0) {
      const before = this.keyboard.queued;
      this.keyboard.pump();
      if (this.keyboard.queued === before) break;
      r = this.hv.run(limitNs);
    }
    switch (r.kind) {
      case "time-limit":
      case "host-limit":
      case "stopped":
        return null;
      case "idle":
        return { kind: "idle", text: `stopped: ${r.why}` };
      case "shutdown":
      case "crashed": {
        const d = r.domain;
        const crashed = r.kind === "crashed";
        const reason = r.kind === "crashed" ? Shutdown.crash : r.reason;
        const action = crashed
          ? (this.opts.onCrash ?? "destroy")
          : reason === Shutdown.reboot
            ? (this.opts.onReboot ?? "restart")
            : reason === Shutdown.poweroff
              ? (this.opts.onPoweroff ?? "destroy")
              : "destroy";
        const what = crashed ? "crashed" : `shut down: ${SHUTDOWN_NAMES[reason] ?? `reason ${reason}`}`;
        if (action === "restart") {
          const now = this.hv.nowNs();
          if (this.lastRestartNs !== null && now - this.lastRestartNs < RESTART_DELAY_NS) {
            this.ended = {
              kind: "restart-refused",
              domain: d,
              text: `domain ${d.id} (${d.name}) ${what} again within ${RESTART_DELAY_NS / 1e9} s of its last restart; not restarting it`,
            };
            return this.ended;
          }
          this.lastRestartNs = now;
          try {
            this.restart(`domain ${d.id} (${d.name}) ${what}`);
          } catch (e) {
            this.ended = {
              kind: "restart-refused",
              domain: d,
              text: `domain ${d.id} (${d.name}) ${what}; cannot restart it: ${(e as Error).message}`,
            };
            return this.ended;
          }
          return null;
        }
        this.ended =
          r.kind === "crashed"
            ? { kind: "crashed", domain: d, why: r.why, text: `domain ${d.id} (${d.name}) crashed: ${r.why}` }
            : { kind: "shutdown", domain: d, reason, text: `domain ${d.id} ${what}` };
        return this.ended;
      }
    }
  }

  private start(): { domain: Domain; control: ControlInterface | null } {
    const o = this.opts;
    const { domain, control } = startDomain(
      this.hv,
      {
        name: o.name,
        image: o.image,
        memoryMiB: o.memoryMiB,
        cmdline: o.cmdline,
        module: o.module,
        privileged: o.privileged,
        abi: o.abi,
        cpu: o.cpu,
      },
      o.onConsole,
      o.onNote,
    );
    try {
      o.devices?.attach(domain, control);
    } catch (e) {
      o.devices?.detach(domain);
      control?.disconnect();
      xcDomainDestroy(dom0Of(this.hv), domain.id);
      throw e;
    }
    return { domain, control };
  }

  /** on_* = restart: the old domain destroyed through dom0, the same image built again. */
  private restart(what: string): void {
    const old = this.current;
    this.opts.devices?.detach(old.domain);
    old.control?.disconnect();
    xcDomainDestroy(dom0Of(this.hv), old.domain.id);
    this.current = this.start();
    this.restarts++;
    this.opts.onNote(`${what}; restarted as domain ${this.current.domain.id}`);
  }
}
