/**
 * The toolstack's view of the domains: what xend kept for each one (its configuration, its
 * console, what to do when it stops) over the hypervisor's own state. The daemon and its API
 * talk to a DomainManager only.
 *
 * The operations that reach into the hypervisor (create, pause, destroy, scheduling, memory
 * limits) are gathered in the "control" section at the end. Create and destroy go through dom0
 * (launch.ts, xc.ts); the others still call the Hypervisor directly and are meant to become
 * dom0_op calls through src/tools/xc.ts without the rest of this file changing.
 */
import { Shutdown } from "../public/xen.js";
import { type Domain, DomainState } from "../xen/domain.js";
import type { Hypervisor } from "../xen/hypervisor.js";
import type { DomainConfig, ExitAction } from "./config.js";
import { dom0Of } from "./dom0.js";
import { launchDomain } from "./launch.js";
import { xcDomainDestroy } from "./xc.js";

/** A request the toolstack refuses, with a message meant for a person (and an HTTP status). */
export class ToolstackError extends Error {
  constructor(
    message: string,
    readonly status = 400,
  ) {
    super(message);
    this.name = "ToolstackError";
  }
}

/** One row of `xm list`, and more. */
export interface DomainInfo {
  id: number;
  name: string;
  /** Memory the domain holds now, and may hold at most, in KiB. */
  memKiB: number;
  maxMemKiB: number;
  /** Balloon target set by mem-set, in KiB. */
  targetKiB: number;
  cpu: number;
  /** Xen's state letters: r running, b blocked, p paused, s shut down, c crashed, d dying. */
  state: string;
  cpuTimeNs: number;
  /** Why it stopped (poweroff, reboot, suspend, crash), when it has. */
  shutdownReason?: string;
  crashReason?: string;
  onPoweroff: ExitAction;
  onReboot: ExitAction;
  onCrash: ExitAction;
  abi: string;
  cmdline: string;
  kernel: string;
  /** Times it was restarted by on_reboot/on_crash = restart. */
  restarts: number;
}

/** What happened to a domain, for console watchers and the API's event stream. */
export type DomainEvent =
  | { kind: "created"; id: number; name: string }
  | { kind: "stopped"; id: number; name: string; reason: string; action: ExitAction }
  | { kind: "restarted"; id: number; name: string; oldId: number }
  | { kind: "destroyed"; id: number; name: string };

/** The kernel and ramdisk bytes of a domain, kept for restarts and saves. */
export interface BootFiles {
  kernel: Uint8Array;
  ramdisk?: Uint8Array;
}

/** What the toolstack keeps for each domain it manages. */
export interface ManagedDomain {
  domain: Domain;
  config: DomainConfig;
  boot: BootFiles | null;
  /** VA of start_info in the guest (the builder put it there; save uses it). */
  startInfoVa: number;
  /** Console output kept for attach and dmesg-like replay (the last CONSOLE_KEEP bytes). */
  console: Uint8Array[];
  consoleBytes: number;
  targetKiB: number;
  restarts: number;
  /** The stop was handled (on_* applied) already. */
  stopHandled: boolean;
  crashReason?: string;
}

const CONSOLE_KEEP = 64 * 1024;
const SHUTDOWN_NAMES = ["poweroff", "reboot", "suspend", "crash"];

export class DomainManager {
  private readonly managed = new Map<number, ManagedDomain>();
  private readonly consoleWatchers = new Map<number, Set<(bytes: Uint8Array) => void>>();
  private readonly eventWatchers = new Set<(e: DomainEvent) => void>();

  constructor(readonly hv: Hypervisor) {}

  // ------------------------------------------------------------------ lookup

  /** A domain by id or name (xm accepts either), or a ToolstackError that says which exist. */
  find(ref: string | number): ManagedDomain {
    const text = String(ref).trim();
    let m: ManagedDomain | undefined;
    if (/^\d+$/.test(text)) m = this.managed.get(Number(text));
    if (m === undefined) for (const x of this.managed.values()) if (x.config.name === text) m = x;
    if (m === undefined) {
      if (text === "0" || text === "Domain-0")
        throw new ToolstackError(
          `Domain-0 is the toolstack's own domain; it cannot be managed this way`,
          400,
        );
      const known = [...this.managed.values()].map((x) => `${x.config.name} (${x.domain.id})`);
      throw new ToolstackError(
        `no domain "${text}"${known.length > 0 ? `; domains: ${known.join(", ")}` : "; no domains are running"}`,
        404,
      );
    }
    return m;
  }

  byName(name: string): ManagedDomain | undefined {
    for (const m of this.managed.values()) if (m.config.name === name) return m;
    return undefined;
  }

  list(): DomainInfo[] {
    return [...this.managed.values()].sort((a, b) => a.domain.id - b.domain.id).map((m) => this.info(m));
  }

  info(m: ManagedDomain): DomainInfo {
    const d = m.domain;
    const v = d.vcpus[0];
    const flags = [
      d.state === DomainState.Running && !d.paused && !v.blocked ? "r" : "-",
      d.state === DomainState.Running && v.blocked ? "b" : "-",
      d.paused && d.state === DomainState.Running ? "p" : "-",
      d.state === DomainState.Shutdown ? "s" : "-",
      d.state === DomainState.Crashed ? "c" : "-",
      d.state === DomainState.Dying ? "d" : "-",
    ].join("");
    return {
      id: d.id,
      name: m.config.name,
      memKiB: d.totPages * 4,
      maxMemKiB: d.maxPages * 4,
      targetKiB: m.targetKiB,
      cpu: v.processor,
      state: flags,
      cpuTimeNs: d.vcpus.reduce((t, x) => t + x.cpuTimeNs, 0),
      shutdownReason:
        d.state === DomainState.Shutdown
          ? (SHUTDOWN_NAMES[d.shutdownCode] ?? `reason ${d.shutdownCode}`)
          : undefined,
      crashReason: d.state === DomainState.Crashed ? (m.crashReason ?? "crashed") : undefined,
      onPoweroff: m.config.onPoweroff,
      onReboot: m.config.onReboot,
      onCrash: m.config.onCrash,
      abi: m.config.abi,
      cmdline: m.config.cmdline,
      kernel: m.config.kernel,
      restarts: m.restarts,
    };
  }

  // ------------------------------------------------------------------ events and consoles

  onEvent(fn: (e: DomainEvent) => void): () => void {
    this.eventWatchers.add(fn);
    return () => this.eventWatchers.delete(fn);
  }

  private emit(e: DomainEvent): void {
    for (const fn of this.eventWatchers) fn(e);
  }

  /** Console bytes from the hypervisor (its onConsole hook). */
  consoleOutput(d: Domain, bytes: Uint8Array): void {
    const m = this.managed.get(d.id);
    if (m === undefined || m.domain !== d) return;
    const copy = bytes.slice();
    m.console.push(copy);
    m.consoleBytes += copy.length;
    while (m.consoleBytes - m.console[0].length >= CONSOLE_KEEP)
      m.consoleBytes -= m.console.shift()?.length ?? 0;
    for (const fn of this.consoleWatchers.get(d.id) ?? []) fn(copy);
  }

  consoleHistory(m: ManagedDomain): Uint8Array {
    return Buffer.concat(m.console);
  }

  watchConsole(id: number, fn: (bytes: Uint8Array) => void): () => void {
    let set = this.consoleWatchers.get(id);
    if (set === undefined) this.consoleWatchers.set(id, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  // ------------------------------------------------------------------ lifecycle

  /** xm create: build and start a domain from a checked configuration. */
  create(config: DomainConfig, boot: BootFiles): DomainInfo {
    const clash = this.byName(config.name);
    if (clash !== undefined) {
      throw new ToolstackError(
        `a domain named "${config.name}" already exists (id ${clash.domain.id}); choose another name (name=...)`,
        409,
      );
    }
    if (config.cpu >= this.hv.sched.pcpus.length) {
      throw new ToolstackError(
        `cpu = ${config.cpu}: this machine has ${this.hv.sched.pcpus.length} CPU(s), numbered from 0`,
      );
    }
    const m = this.build(config, boot);
    this.emit({ kind: "created", id: m.domain.id, name: config.name });
    return this.info(m);
  }

  private build(config: DomainConfig, boot: BootFiles): ManagedDomain {
    let result: ReturnType<typeof launchDomain>;
    try {
      result = launchDomain(this.hv, {
        name: config.name,
        image: boot.kernel,
        memoryMiB: config.memoryMiB,
        cmdline: config.cmdline,
        module: boot.ramdisk,
        abi: config.abi,
      });
    } catch (e) {
      throw new ToolstackError(`cannot build domain "${config.name}": ${(e as Error).message}`);
    }
    const { domain, image } = result;
    const m: ManagedDomain = {
      domain,
      config,
      boot,
      startInfoVa: image.startInfoVa,
      console: [],
      consoleBytes: 0,
      targetKiB: domain.maxPages * 4,
      restarts: 0,
      stopHandled: false,
    };
    this.managed.set(domain.id, m);
    if (config.cpu >= 0) this.pinCpu(m, config.cpu);
    return m;
  }

  /** Adopts a domain made elsewhere (restore). */
  adopt(domain: Domain, config: DomainConfig, boot: BootFiles | null, startInfoVa: number): ManagedDomain {
    const m: ManagedDomain = {
      domain,
      config,
      boot,
      startInfoVa,
      console: [],
      consoleBytes: 0,
      targetKiB: domain.maxPages * 4,
      restarts: 0,
      stopHandled: false,
    };
    this.managed.set(domain.id, m);
    this.emit({ kind: "created", id: domain.id, name: config.name });
    return m;
  }

  pause(m: ManagedDomain): void {
    this.requireRunning(m, "pause");
    this.hv.pauseDomain(m.domain);
  }

  unpause(m: ManagedDomain): void {
    this.requireRunning(m, "unpause");
    this.hv.unpauseDomain(m.domain);
  }

  private requireRunning(m: ManagedDomain, what: string): void {
    const s = m.domain.state;
    if (s !== DomainState.Running) {
      const how =
        s === DomainState.Crashed
          ? "has crashed"
          : s === DomainState.Shutdown
            ? "has shut down"
            : "is being destroyed";
      throw new ToolstackError(
        `cannot ${what} domain "${m.config.name}": it ${how} (xm destroy removes it)`,
        409,
      );
    }
  }

  /**
   * xm shutdown / xm reboot. The March 2005 interface asks a guest to shut down through the
   * control interface, which tsxen does not have yet, so the toolstack stops the domain as if
   * it had shut itself down with this reason, then applies on_poweroff / on_reboot.
   */
  shutdown(m: ManagedDomain, reason: "poweroff" | "reboot"): void {
    this.requireRunning(m, reason === "reboot" ? "reboot" : "shut down");
    this.hv.shutdownDomain(m.domain, reason === "reboot" ? Shutdown.reboot : Shutdown.poweroff, false);
    this.handleStops();
  }

  /**
   * Applies on_poweroff / on_reboot / on_crash to domains that stopped since the last call
   * (the daemon calls this after every slice of the run loop).
   */
  handleStops(): void {
    for (const m of [...this.managed.values()]) {
      const d = m.domain;
      if (m.stopHandled || (d.state !== DomainState.Shutdown && d.state !== DomainState.Crashed)) continue;
      m.stopHandled = true;
      const crashed = d.state === DomainState.Crashed || d.shutdownCode === Shutdown.crash;
      const reason = crashed
        ? `crashed${m.crashReason ? `: ${m.crashReason}` : ""}`
        : (SHUTDOWN_NAMES[d.shutdownCode] ?? `shutdown ${d.shutdownCode}`);
      let action: ExitAction;
      if (crashed) action = m.config.onCrash;
      else if (d.shutdownCode === Shutdown.reboot) action = m.config.onReboot;
      else if (d.shutdownCode === Shutdown.suspend) action = "preserve";
      else action = m.config.onPoweroff;
      this.emit({ kind: "stopped", id: d.id, name: m.config.name, reason, action });
      if (action === "destroy") this.destroy(m);
      else if (action === "restart") this.restart(m);
    }
  }

  /** Records the hypervisor's reason for a crash (its onLog names it). */
  noteCrash(domid: number, why: string): void {
    const m = this.managed.get(domid);
    if (m !== undefined && m.crashReason === undefined) m.crashReason = why;
  }

  private restart(m: ManagedDomain): void {
    const oldId = m.domain.id;
    const restarts = m.restarts + 1;
    this.destroy(m, false);
    if (m.boot === null) return; // a restored domain without its kernel cannot be rebuilt
    try {
      const n = this.build(m.config, m.boot);
      n.restarts = restarts;
      this.emit({ kind: "restarted", id: n.domain.id, name: m.config.name, oldId });
    } catch (e) {
      this.hv.log(`cannot restart domain ${m.config.name}: ${(e as Error).message}`);
    }
  }

  /** xm destroy: the domain stops at once and its memory goes back to Xen. */
  destroy(m: ManagedDomain, announce = true): void {
    const d = m.domain;
    this.managed.delete(d.id);
    this.killDomain(d);
    for (const fn of this.consoleWatchers.get(d.id) ?? []) fn(new Uint8Array(0));
    this.consoleWatchers.delete(d.id);
    if (announce) this.emit({ kind: "destroyed", id: d.id, name: m.config.name });
  }

  /** Frees a domain the toolstack never adopted (a restore that failed half-way). */
  discard(d: Domain): void {
    this.killDomain(d);
  }

  /** Every domain is destroyed (daemon shutdown). */
  destroyAll(): void {
    for (const m of [...this.managed.values()]) this.destroy(m);
  }

  // ------------------------------------------------------------------ control (the future xc.ts calls)

  pinCpu(m: ManagedDomain, cpu: number): void {
    const n = this.hv.sched.pcpus.length;
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= n)
      throw new ToolstackError(`CPU ${cpu} does not exist: this machine has CPUs 0..${n - 1}`);
    for (const v of m.domain.vcpus) if (v.processor !== cpu) this.hv.sched.migrate(v, cpu);
  }

  /** xm mem-max: the most memory the domain may hold (DOM0_SETDOMAINMAXMEM). */
  setMaxMem(m: ManagedDomain, mib: number): void {
    if (!Number.isInteger(mib) || mib < 1 || mib > 4096)
      throw new ToolstackError(`memory must be 1..4096 MiB, not ${mib}`);
    m.domain.maxPages = (mib * 1024) / 4;
  }

  /**
   * xm mem-set (the manual's balloon): the target the guest's balloon driver should reach
   * through dom_mem_op. It may not exceed mem-max. Guests of this interface learn the target
   * over the control interface, which tsxen lacks; the target is recorded and shown.
   */
  setMemTarget(m: ManagedDomain, mib: number): void {
    if (!Number.isInteger(mib) || mib < 1)
      throw new ToolstackError(`memory target must be a whole number of MiB, not ${mib}`);
    if (mib * 256 > m.domain.maxPages) {
      throw new ToolstackError(
        `${mib} MiB is above the domain's maximum of ${m.domain.maxPages / 256} MiB (raise it with xm mem-max)`,
      );
    }
    m.targetKiB = mib * 1024;
  }

  /** xm sched-bvt: per-domain BVT parameters (DOM0_ADJUSTDOM). Times in ns. */
  setBvt(
    m: ManagedDomain,
    p: { mcuadv: number; warpback: number; warpvalue: number; warpl: number; warpu: number },
  ): void {
    if (this.hv.sched.policy.name !== "bvt")
      throw new ToolstackError(`the scheduler is ${this.hv.sched.policy.name}, not bvt`);
    const nat = (x: number, what: string, min = 0): void => {
      if (!Number.isSafeInteger(x) || x < min)
        throw new ToolstackError(`${what} must be a whole number >= ${min}, not ${x}`);
    };
    nat(p.mcuadv, "mcuadv", 1);
    nat(p.warpvalue, "warp");
    nat(p.warpl, "warpl");
    nat(p.warpu, "warpu");
    const b = m.domain.bvt;
    b.mcuAdvance = p.mcuadv;
    b.warpback = p.warpback !== 0;
    b.warpValue = p.warpvalue;
    b.warplNs = p.warpl;
    b.warpuNs = p.warpu;
  }

  /** xm sched-bvt-ctxallow: the context-switch allowance in ns (DOM0_SCHEDCTL). */
  setCtxAllow(ns: number): void {
    if (this.hv.sched.policy.name !== "bvt")
      throw new ToolstackError(`the scheduler is ${this.hv.sched.policy.name}, not bvt`);
    if (!Number.isSafeInteger(ns) || ns < 100_000)
      throw new ToolstackError(`ctx_allow must be at least 100000 ns, not ${ns}`);
    this.hv.sched.policy.ctxAllowNs = ns;
  }

  /** xm info: DOM0_PHYSINFO and the scheduler. */
  physinfo(): Record<string, number | string> {
    const hv = this.hv;
    return {
      nr_cpus: hv.sched.pcpus.length,
      cpu_mhz: hv.clock.tscHz / 1e6,
      total_memory: (hv.mem.nrFrames * 4) / 1024,
      free_memory: Math.floor((hv.mem.freeFrames * 4) / 1024),
      scheduler: hv.sched.policy.name,
      ctx_allow_ns: hv.sched.policy.ctxAllowNs,
      xen_version: "2.0 (tsxen)",
      system_time_ns: hv.nowNs(),
    };
  }

  /** DOM0_DESTROYDOMAIN through dom0: domain_kill, its memory relinquished (semantics.md §8.1). */
  private killDomain(d: Domain): void {
    xcDomainDestroy(dom0Of(this.hv), d.id);
  }
}
