/**
 * The toolstack's view of the domains: what xend kept for each one (its configuration, its
 * console, what to do when it stops) over the hypervisor's own state. The daemon and its API
 * talk to a DomainManager only.
 *
 * Everything that reaches into the hypervisor goes through dom0's administrative interface:
 * dom0_op through the libxc-like wrappers of xc.ts (create, pause, destroy, GETDOMAININFO for
 * xm list, PINCPUDOMAIN, SETDOMAINMAXMEM, ADJUSTDOM / SCHEDCTL, PHYSINFO), and the domain's
 * control interface (control_if.ts) for what the guest itself is asked to do: shut down,
 * reboot, change its memory footprint.
 */
import { readFileSync } from "node:fs";
import { CMSG_MEM_REQUEST_SET, Cmsg, CmsgShutdown, MemRequest, ShutdownSysrq } from "../public/control_if.js";
import { SchedId } from "../public/sched_ctl.js";
import { SHUTDOWN_NAMES, Shutdown, VirqMar } from "../public/xen.js";
import { DEFAULT_ABI } from "../xen/abi.js";
import type { Domain } from "../xen/domain.js";
import type { Hypervisor } from "../xen/hypervisor.js";
import { XEN_VERSION_NAME } from "../xen/version.js";
import type { BlkifController, BlockDevice } from "./backends/blkif_ctl.js";
import { attachDevices, detachDevices } from "./backends/devices.js";
import type { NetifController, NetworkDevice } from "./backends/netif_ctl.js";
import type { DomainConfig, ExitAction } from "./config.js";
import { type DiskSpec, parseDiskSpec, parseVifSpec } from "./config.js";
import { ConsoleFeed } from "./console_feed.js";
import { bindControlChannel, ControlInterface, type ControlMessage } from "./control_if.js";
import { type Dom0, dom0Of, XcError } from "./dom0.js";
import { type StartedDomain, startDomain } from "./launch.js";
import {
  type DomainInfo as XcDomainInfo,
  xcBvtCtxAllow,
  xcBvtDomainSet,
  xcDomainDestroy,
  xcDomainGetInfo,
  xcDomainList,
  xcDomainPause,
  xcDomainPinCpu,
  xcDomainUnpause,
  xcPhysInfo,
  xcSchedId,
  xcSetMaxMem,
} from "./xc.js";

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
  /** Wall-clock time (ms since 1970) it began running in this tsxend. */
  startedMs: number;
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
  /** Wall-clock time it began running here (created, restored or arrived): xm uptime. */
  startedMs: number;
  crashReason?: string;
  /** The controller's end of its control interface (MAR domains), null when it has none. */
  control: ControlInterface | null;
  /** Its virtual block devices (xend's blkif controller; MAR domains with a control interface). */
  blkif?: BlkifController;
  /** Its virtual network interfaces (xend's netif controller), likewise. */
  netif?: NetifController;
}

/** How long xm shutdown / reboot waits for the guest to answer the request (ms). */
export const SHUTDOWN_ANSWER_MS = 5000;
/** How long xm mem-set waits for the balloon driver's answer. */
export const MEM_ANSWER_MS = 2000;

const CONSOLE_KEEP = 64 * 1024;

/** A control-interface answer, or "timeout" when the guest has not given it within ms. */
async function answerWithin<T>(answer: Promise<T>, ms: number): Promise<T | "timeout"> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), ms);
  });
  try {
    return await Promise.race([answer, late]);
  } finally {
    clearTimeout(timer);
  }
}

export class DomainManager {
  private readonly managed = new Map<number, ManagedDomain>();
  private readonly consoleWatchers = new Map<number, Set<(bytes: Uint8Array) => void>>();
  private readonly eventWatchers = new Set<(e: DomainEvent) => void>();
  /** Told of every domain killed, announced or not (a save, a migration, a restart's old one). */
  private readonly goneWatchers = new Set<(d: Domain) => void>();
  private readonly keyboards = new WeakMap<ManagedDomain, ConsoleFeed>();
  /**
   * Feeds holding bytes their guest had no room for yet. pumpConsoles runs before every slice
   * of the run loop; with none waiting it returns at once, where a pass over 100 idle
   * domains' (cold) entries was 1 % of a core in tsxend.
   */
  private readonly waiting = new Set<ConsoleFeed>();

  /** dom0 heard VIRQ_DOM_EXC since handleStops last looked. */
  private domainException = false;

  constructor(readonly hv: Hypervisor) {
    // As xend did: dom0 binds VIRQ_DOM_EXC, and asks DOM0_GETDOMAININFO when it fires.
    this.dom0.onVirq(VirqMar.DOM_EXC, () => {
      this.domainException = true;
    });
  }

  /** The toolstack's own domain, whose hypercalls carry every request. */
  get dom0(): Dom0 {
    return dom0Of(this.hv);
  }

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

  /** xm list: one DOM0_GETDOMAININFO sweep over every domain. */
  list(): DomainInfo[] {
    const infos = new Map(xcDomainList(this.dom0).map((x) => [x.domid, x]));
    return [...this.managed.values()]
      .sort((a, b) => a.domain.id - b.domain.id)
      .map((m) => this.info(m, infos.get(m.domain.id)));
  }

  /** A domain as DOM0_GETDOMAININFO reports it, with what the toolstack keeps. */
  info(m: ManagedDomain, known?: XcDomainInfo): DomainInfo {
    const d = m.domain;
    const x = known ?? xcDomainGetInfo(this.dom0, d.id);
    if (x === null || x.domid !== d.id) throw new ToolstackError(`domain ${d.id} has vanished`, 410);
    const flags = [
      x.running && !x.paused ? "r" : "-",
      x.blocked && !x.paused && !x.shutdown && !x.crashed ? "b" : "-",
      x.paused && !x.shutdown && !x.crashed && !x.dying ? "p" : "-",
      x.shutdown ? "s" : "-",
      x.crashed ? "c" : "-",
      x.dying ? "d" : "-",
    ].join("");
    return {
      id: d.id,
      name: m.config.name,
      memKiB: x.totPages * 4,
      maxMemKiB: x.maxPages * 4,
      targetKiB: m.targetKiB,
      cpu: x.cpu,
      state: flags,
      cpuTimeNs: x.cpuTimeNs,
      shutdownReason: x.shutdown
        ? (SHUTDOWN_NAMES[x.shutdownReason] ?? `reason ${x.shutdownReason}`)
        : undefined,
      crashReason: x.crashed ? (m.crashReason ?? "crashed") : undefined,
      onPoweroff: m.config.onPoweroff,
      onReboot: m.config.onReboot,
      onCrash: m.config.onCrash,
      abi: m.config.abi,
      cmdline: m.config.cmdline,
      kernel: m.config.kernel,
      restarts: m.restarts,
      startedMs: m.startedMs,
    };
  }

  // ------------------------------------------------------------------ events and consoles

  onEvent(fn: (e: DomainEvent) => void): () => void {
    this.eventWatchers.add(fn);
    return () => this.eventWatchers.delete(fn);
  }

  /** fn(d) once each domain is killed (destroyed, saved, migrated away, restarted as another). */
  onGone(fn: (d: Domain) => void): () => void {
    this.goneWatchers.add(fn);
    return () => this.goneWatchers.delete(fn);
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

  /**
   * Keyboard bytes for a domain's console (xm console, the dashboard): over its control
   * interface once the guest uses it, else Xen's console ring; they wait until it has room.
   */
  consoleInput(m: ManagedDomain, bytes: Uint8Array): void {
    let feed = this.keyboards.get(m);
    if (feed === undefined) this.keyboards.set(m, (feed = new ConsoleFeed(this.hv, () => m.control)));
    feed.push(bytes);
    feed.pump();
    if (feed.queued > 0) this.waiting.add(feed);
  }

  /** Whether keyboard bytes wait for room in a guest's ring (the run loop keeps short turns). */
  get consoleBacklog(): boolean {
    return this.waiting.size > 0;
  }

  /** Gives waiting keyboard bytes to the guests that have room now (between slices). */
  pumpConsoles(): void {
    if (this.waiting.size === 0) return;
    // In the domains' order, as they share Xen's console ring.
    for (const m of this.managed.values()) {
      const feed = this.keyboards.get(m);
      if (feed === undefined || !this.waiting.has(feed)) continue;
      feed.pump();
      if (feed.queued === 0) this.waiting.delete(feed);
    }
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
    const cpus = this.nrCpus();
    if (config.cpu >= cpus) {
      throw new ToolstackError(`cpu = ${config.cpu}: this machine has ${cpus} CPU(s), numbered from 0`);
    }
    const m = this.build(config, boot);
    this.emit({ kind: "created", id: m.domain.id, name: config.name });
    return this.info(m);
  }

  private build(config: DomainConfig, boot: BootFiles): ManagedDomain {
    let result: StartedDomain;
    // Its console output can only come once it runs, after the build has returned.
    let built: Domain | undefined;
    try {
      result = startDomain(
        this.hv,
        {
          name: config.name,
          image: boot.kernel,
          memoryMiB: config.memoryMiB,
          cmdline: config.cmdline,
          module: boot.ramdisk,
          abi: config.abi,
        },
        (bytes) => {
          if (built !== undefined) this.consoleOutput(built, bytes);
        },
        (why) => this.hv.log(why),
      );
    } catch (e) {
      throw new ToolstackError(`cannot build domain "${config.name}": ${(e as Error).message}`);
    }
    const { domain, image, control } = result;
    built = domain;
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
      control,
      startedMs: Date.now(),
    };
    this.managed.set(domain.id, m);
    try {
      if (config.cpu >= 0) this.pinCpu(m, config.cpu);
      this.attachConfigDevices(m);
    } catch (e) {
      this.destroy(m, false);
      throw e instanceof ToolstackError
        ? e
        : new ToolstackError(`cannot build domain "${config.name}": ${(e as Error).message}`);
    }
    return m;
  }

  /** Its controllers for block and network devices, and the devices its configuration names (xm create). */
  private attachConfigDevices(m: ManagedDomain): void {
    if (m.control === null) {
      if ((m.config.disks ?? []).length > 0 || (m.config.vifs ?? []).length > 0)
        throw new ToolstackError(
          `domain "${m.config.name}" has virtual devices, but they need the 2005-03 interface's control interface`,
        );
      return;
    }
    Object.assign(
      m,
      attachDevices(this.dom0, m.domain.id, m.control, m.config.disks ?? [], m.config.vifs ?? [], (msg) =>
        this.hv.log(msg),
      ),
    );
  }

  // ------------------------------------------------------------------ virtual network interfaces

  /** xm network-attach: "mac=..., bridge=..." (both optional). */
  networkAttach(m: ManagedDomain, spec: string): NetworkDevice[] {
    let v: ReturnType<typeof parseVifSpec>;
    try {
      v = parseVifSpec(spec);
    } catch (e) {
      throw new ToolstackError((e as Error).message);
    }
    const netif = this.requireNetif(m);
    try {
      netif.attach(v);
    } catch (e) {
      throw new ToolstackError((e as Error).message, 409);
    }
    m.config.vifs = [...(m.config.vifs ?? []), v];
    return netif.list();
  }

  /** xm network-detach: by the vif's index or MAC. */
  networkDetach(m: ManagedDomain, which: string): NetworkDevice[] {
    const netif = this.requireNetif(m);
    try {
      netif.detach(which);
    } catch (e) {
      throw new ToolstackError((e as Error).message, 404);
    }
    const left = new Set(netif.specs());
    m.config.vifs = (m.config.vifs ?? []).filter((v) => left.has(v));
    return netif.list();
  }

  networkList(m: ManagedDomain): NetworkDevice[] {
    return m.netif?.list() ?? [];
  }

  private requireNetif(m: ManagedDomain): NetifController {
    this.requireRunning(m, "change the network interfaces of");
    if (m.netif === undefined)
      throw new ToolstackError(
        `domain "${m.config.name}" has no control interface (the 2005-07 interface), so it can have no virtual network interfaces`,
        409,
      );
    return m.netif;
  }

  // ------------------------------------------------------------------ virtual block devices

  /** xm block-attach: 'file:/path,dev,mode' given as its three parts, as xm takes them. */
  blockAttach(m: ManagedDomain, uname: string, dev: string, mode: string): BlockDevice[] {
    let spec: DiskSpec;
    try {
      spec = parseDiskSpec(`${uname},${dev},${mode}`);
    } catch (e) {
      throw new ToolstackError((e as Error).message);
    }
    const blkif = this.requireBlkif(m);
    try {
      blkif.attach(spec);
    } catch (e) {
      throw new ToolstackError((e as Error).message, 409);
    }
    m.config.disks = [...(m.config.disks ?? []), spec];
    return blkif.list();
  }

  /** xm block-detach: by device name (sdb) or number (0x810). */
  blockDetach(m: ManagedDomain, dev: string): BlockDevice[] {
    const blkif = this.requireBlkif(m);
    try {
      blkif.detach(dev);
    } catch (e) {
      throw new ToolstackError((e as Error).message, 404);
    }
    const left = new Set(blkif.specs());
    m.config.disks = (m.config.disks ?? []).filter((d) => left.has(d));
    return blkif.list();
  }

  /** xm block-list. */
  blockList(m: ManagedDomain): BlockDevice[] {
    return m.blkif?.list() ?? [];
  }

  private requireBlkif(m: ManagedDomain): BlkifController {
    this.requireRunning(m, "change the disks of");
    if (m.blkif === undefined)
      throw new ToolstackError(
        `domain "${m.config.name}" has no control interface (the 2005-07 interface), so it can have no virtual disks`,
        409,
      );
    return m.blkif;
  }

  /** Adopts a domain made elsewhere (restore); announce: say "created" (a caller may say more). */
  adopt(
    domain: Domain,
    config: DomainConfig,
    boot: BootFiles | null,
    startInfoVa: number,
    announce = true,
  ): ManagedDomain {
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
      control: null,
      startedMs: Date.now(),
    };
    // The restored domain's end of its control channel lost its peer; bind it to dom0 again
    // (port 1, now unbound towards dom0). A domain that had none keeps none.
    if (config.abi === DEFAULT_ABI) {
      try {
        const [port] = bindControlChannel(this.dom0, domain.id);
        m.control = this.connectControl(domain, port);
      } catch {
        m.control = null;
      }
    }
    // Its disks come back as they were configured; the frontend finds its interface
    // disconnected when it says its driver is up again, and connects anew.
    try {
      this.attachConfigDevices(m);
    } catch (e) {
      this.hv.log(`domain ${config.name}: devices not attached after restore: ${(e as Error).message}`);
    }
    this.managed.set(domain.id, m);
    if (announce) this.emit({ kind: "created", id: domain.id, name: config.name });
    return m;
  }

  private connectControl(domain: Domain, port: number): ControlInterface {
    return new ControlInterface(
      this.dom0,
      domain.id,
      port,
      (bytes) => this.consoleOutput(domain, bytes),
      (why) => this.hv.log(why),
    );
  }

  /** xm pause: DOM0_PAUSEDOMAIN. */
  pause(m: ManagedDomain): void {
    this.requireRunning(m, "pause");
    this.xc(() => xcDomainPause(this.dom0, m.domain.id));
  }

  /** xm unpause: DOM0_UNPAUSEDOMAIN. */
  unpause(m: ManagedDomain): void {
    this.requireRunning(m, "unpause");
    this.xc(() => xcDomainUnpause(this.dom0, m.domain.id));
  }

  private requireRunning(m: ManagedDomain, what: string): XcDomainInfo {
    const x = xcDomainGetInfo(this.dom0, m.domain.id);
    const gone = x === null || x.domid !== m.domain.id;
    if (gone || x.crashed || x.shutdown || x.dying) {
      const how = gone || x.dying ? "is being destroyed" : x.crashed ? "has crashed" : "has shut down";
      throw new ToolstackError(
        `cannot ${what} domain "${m.config.name}": it ${how} (xm destroy removes it)`,
        409,
      );
    }
    return x;
  }

  /**
   * xm shutdown / xm reboot, as xend did it: a CMSG_SHUTDOWN request (poweroff or reboot) on
   * the domain's control interface. The guest answers and shuts itself down with that reason;
   * on_poweroff / on_reboot then applies (handleStops). Resolves once the guest has answered;
   * a guest that does not answer within timeoutMs (its kernel does not listen, or it is
   * paused) gets a ToolstackError saying so, and xm destroy remains the hard stop.
   */
  async shutdown(
    m: ManagedDomain,
    reason: "poweroff" | "reboot",
    timeoutMs = SHUTDOWN_ANSWER_MS,
  ): Promise<void> {
    const what = reason === "reboot" ? "reboot" : "shut down";
    await this.ask(
      m,
      what,
      `the ${reason} request`,
      reason === "reboot" ? CmsgShutdown.REBOOT : CmsgShutdown.POWEROFF,
      new Uint8Array(0),
      timeoutMs,
    );
  }

  /**
   * xm sysrq: CMSG_SHUTDOWN_SYSRQ carrying the key (shutdown_sysrq_t), which XenLinux's
   * shutdown handler passes to handle_sysrq. Resolves once the guest has answered.
   */
  async sysrq(m: ManagedDomain, key: string, timeoutMs = SHUTDOWN_ANSWER_MS): Promise<void> {
    if (!/^[\x21-\x7e]$/.test(key))
      throw new ToolstackError(`a sysrq key is one printable character, not ${JSON.stringify(key)}`);
    const payload = new Uint8Array(ShutdownSysrq.SIZE);
    payload[ShutdownSysrq.key] = key.charCodeAt(0);
    this.requireRunning(m, `send sysrq ${key} to`);
    await this.ask(m, `take sysrq ${key}`, `sysrq ${key}`, CmsgShutdown.SYSRQ, payload, timeoutMs);
  }

  /** A CMSG_SHUTDOWN request answered by the guest within timeoutMs, or a ToolstackError. */
  private async ask(
    m: ManagedDomain,
    what: string,
    request: string,
    subtype: number,
    payload: Uint8Array,
    timeoutMs: number,
  ): Promise<void> {
    const x = this.requireRunning(m, what);
    const name = m.config.name;
    if (m.control === null || !m.control.connected)
      throw new ToolstackError(
        `cannot ask domain "${name}" to ${what}: it has no control interface (xm destroy stops it)`,
        409,
      );
    if (x.paused)
      throw new ToolstackError(
        `domain "${name}" is paused and cannot answer; xm unpause it first (or xm destroy it)`,
        409,
      );
    let answer: Promise<unknown>;
    try {
      answer = m.control.request(Cmsg.SHUTDOWN, subtype, payload);
    } catch (e) {
      throw new ToolstackError(`cannot ask domain "${name}" to ${what}: ${(e as Error).message}`, 409);
    }
    const got = await answerWithin(answer, timeoutMs);
    if (got === "timeout" || got === null) {
      throw new ToolstackError(
        `domain "${name}" did not answer ${request} within ${timeoutMs / 1000} s: ` +
          `its kernel does not listen on the control interface; xm destroy stops it`,
        504,
      );
    }
  }

  /**
   * Applies on_poweroff / on_reboot / on_crash to domains that stopped since the last call
   * (the daemon calls this after every slice of the run loop). As xend, it learns of them from
   * VIRQ_DOM_EXC on dom0 and then DOM0_GETDOMAININFO, not from the hypervisor's own state.
   */
  handleStops(): void {
    if (!this.domainException) return;
    this.domainException = false;
    for (const m of [...this.managed.values()]) {
      const d = m.domain;
      if (m.stopHandled) continue;
      const info = xcDomainGetInfo(this.dom0, d.id);
      if (info === null || info.domid !== d.id || (!info.shutdown && !info.crashed)) continue;
      m.stopHandled = true;
      const code = info.shutdownReason;
      const crashed = info.crashed || code === Shutdown.crash;
      const reason = crashed
        ? `crashed${m.crashReason ? `: ${m.crashReason}` : ""}`
        : (SHUTDOWN_NAMES[code] ?? `shutdown ${code}`);
      let action: ExitAction;
      if (crashed) action = m.config.onCrash;
      else if (code === Shutdown.reboot) action = m.config.onReboot;
      else if (code === Shutdown.suspend) action = "preserve";
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
    try {
      // A restored domain did not bring its kernel: it is read again from its configuration.
      const boot = m.boot ?? {
        kernel: readFileSync(m.config.kernel),
        ramdisk: m.config.ramdisk === undefined ? undefined : readFileSync(m.config.ramdisk),
      };
      const n = this.build(m.config, boot);
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
    const feed = this.keyboards.get(m);
    if (feed !== undefined) this.waiting.delete(feed);
    // dom0 lets go of the domain's shared_info page and its channel first (xcs), so nothing
    // of dom0's keeps the domain alive as a zombie.
    detachDevices(m);
    m.control?.disconnect();
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

  // ------------------------------------------------------------------ control (dom0_op through xc.ts)

  /** Runs an xc call; a failing dom0_op becomes a ToolstackError that names it. */
  private xc<T>(fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (e instanceof XcError) throw new ToolstackError(`the hypervisor refused: ${e.message}`, 409);
      throw e;
    }
  }

  /** xm pincpu: DOM0_PINCPUDOMAIN for each vcpu. */
  pinCpu(m: ManagedDomain, cpu: number): void {
    const n = this.nrCpus();
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= n)
      throw new ToolstackError(`CPU ${cpu} does not exist: this machine has CPUs 0..${n - 1}`);
    for (const v of m.domain.vcpus) this.xc(() => xcDomainPinCpu(this.dom0, m.domain.id, v.id, cpu));
  }

  private nrCpus(): number {
    const p = xcPhysInfo(this.dom0);
    return p.htPerCore * p.cores;
  }

  /** xm mem-max: the most memory the domain may hold (DOM0_SETDOMAINMAXMEM, in KiB). */
  setMaxMem(m: ManagedDomain, mib: number): void {
    if (!Number.isInteger(mib) || mib < 1 || mib > 4096)
      throw new ToolstackError(`memory must be 1..4096 MiB, not ${mib}`);
    this.xc(() => xcSetMaxMem(this.dom0, m.domain.id, mib * 1024));
  }

  /**
   * xm mem-set (the manual's balloon): the target the guest's balloon driver should reach
   * through dom_mem_op, at most mem-max. As xend did, the target goes to the guest in a
   * CMSG_MEM_REQUEST on its control interface. XenLinux's balloon driver answers with the
   * mem_request_t; a kernel without one answers empty (ctrl_if's default handler) or not at
   * all. The target is recorded and shown either way; a ToolstackError says when the guest
   * did not take it (waiting at most timeoutMs for the answer).
   */
  async setMemTarget(m: ManagedDomain, mib: number, timeoutMs = MEM_ANSWER_MS): Promise<void> {
    if (!Number.isInteger(mib) || mib < 1)
      throw new ToolstackError(`memory target must be a whole number of MiB, not ${mib}`);
    const x = this.requireRunning(m, "set the memory target of");
    if (mib * 256 > x.maxPages) {
      throw new ToolstackError(
        `${mib} MiB is above the domain's maximum of ${x.maxPages / 256} MiB (raise it with xm mem-max)`,
      );
    }
    m.targetKiB = mib * 1024;
    const name = m.config.name;
    const recorded = `its target is recorded as ${mib} MiB`;
    if (m.control === null || !m.control.connected)
      throw new ToolstackError(
        `domain "${name}" has no control interface, so no balloon driver heard the request; ${recorded}`,
        409,
      );
    const req = new Uint8Array(MemRequest.SIZE);
    new DataView(req.buffer).setUint32(MemRequest.target, mib * 256, true);
    let answer: Promise<ControlMessage | null>;
    try {
      answer = m.control.request(Cmsg.MEM_REQUEST, CMSG_MEM_REQUEST_SET, req);
    } catch (e) {
      throw new ToolstackError(
        `domain "${name}" was not sent the request: ${(e as Error).message}; ${recorded}`,
        409,
      );
    }
    const got = await answerWithin(answer, timeoutMs);
    if (got === "timeout" || got === null)
      throw new ToolstackError(
        `domain "${name}" did not answer the memory request within ${timeoutMs / 1000} s ` +
          `(${x.paused ? "it is paused" : "no balloon driver is listening"}); ${recorded}`,
        504,
      );
    if (got.payload.length < MemRequest.SIZE)
      throw new ToolstackError(
        `domain "${name}" answered the memory request without taking it: its kernel has no balloon driver; ${recorded}`,
        409,
      );
  }

  private requireBvt(): void {
    const id = xcSchedId(this.dom0);
    if (id !== SchedId.BVT) throw new ToolstackError(`the scheduler is ${schedName(id)}, not bvt`);
  }

  /**
   * xm sched-bvt: per-domain BVT parameters (DOM0_ADJUSTDOM PUT). warpl and warpu are in
   * milliseconds, as the dom0_op takes them.
   */
  setBvt(
    m: ManagedDomain,
    p: { mcuadv: number; warpback: number; warpvalue: number; warpl: number; warpu: number },
  ): void {
    this.requireBvt();
    const nat = (x: number, what: string, min = 0): void => {
      if (!Number.isSafeInteger(x) || x < min || x > 0xffffffff)
        throw new ToolstackError(`${what} must be a whole number >= ${min}, not ${x}`);
    };
    nat(p.mcuadv, "mcuadv", 1);
    nat(p.warpvalue, "warp");
    nat(p.warpl, "warpl");
    nat(p.warpu, "warpu");
    this.xc(() =>
      xcBvtDomainSet(this.dom0, m.domain.id, {
        mcuAdvance: p.mcuadv,
        warpback: p.warpback !== 0,
        warpValue: p.warpvalue,
        warplMs: p.warpl,
        warpuMs: p.warpu,
      }),
    );
  }

  /** xm sched-bvt-ctxallow: the context-switch allowance in ns (DOM0_SCHEDCTL PUT). */
  setCtxAllow(ns: number): void {
    this.requireBvt();
    if (!Number.isSafeInteger(ns) || ns < 100_000 || ns > 0xffffffff)
      throw new ToolstackError(`ctx_allow must be 100000..4294967295 ns, not ${ns}`);
    this.xc(() => xcBvtCtxAllow(this.dom0, ns));
  }

  /** xm info: DOM0_PHYSINFO, DOM0_SCHED_ID and (under BVT) DOM0_SCHEDCTL GET. */
  physinfo(): Record<string, number | string> {
    const p = xcPhysInfo(this.dom0);
    const sched = xcSchedId(this.dom0);
    const out: Record<string, number | string> = {
      nr_cpus: p.htPerCore * p.cores,
      ht_per_core: p.htPerCore,
      cpu_mhz: p.cpuKhz / 1000,
      total_memory: Math.floor((p.totalPages * 4) / 1024),
      free_memory: Math.floor((p.freePages * 4) / 1024),
      scheduler: schedName(sched),
    };
    if (sched === SchedId.BVT) out.ctx_allow_ns = xcBvtCtxAllow(this.dom0);
    out.xen_version = XEN_VERSION_NAME;
    return out;
  }

  /** DOM0_DESTROYDOMAIN through dom0: domain_kill, its memory relinquished (semantics.md §8.1). */
  private killDomain(d: Domain): void {
    xcDomainDestroy(dom0Of(this.hv), d.id);
    for (const fn of this.goneWatchers) fn(d);
  }
}

function schedName(id: number): string {
  return id === SchedId.BVT
    ? "bvt"
    : id === SchedId.RROBIN
      ? "rrobin"
      : id === SchedId.ATROPOS
        ? "atropos"
        : `scheduler ${id}`;
}
