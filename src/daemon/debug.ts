/**
 * `xm debug <domain>`: tsxend serves gdb's remote protocol for one of its domains (the stub of
 * src/tools/gdbstub.ts). Only on loopback: the protocol has no authentication, so the API call
 * that opens it (which needs tsxend's token) is what guards it. While gdb has it stopped the
 * domain is paused and the others run on; time goes on for them, so there is no reverse
 * execution here (tsxen run --gdb has it).
 */
import { type DebugMachine, DebugTarget, Sig, type Stop } from "../tools/debug_target.js";
import { ToolstackError } from "../tools/domains.js";
import { type GdbSession, listenGdb } from "../tools/gdbstub.js";
import { type Domain, DomainState } from "../xen/domain.js";
import type { Hypervisor } from "../xen/hypervisor.js";

/** How often a running debugged domain is looked at for a stop (host time). */
const POLL_MS = 5;

class DaemonMachine implements DebugMachine {
  constructor(
    readonly hv: Hypervisor,
    readonly domain: Domain,
    private readonly kick: () => void,
  ) {}

  onStop(): void {
    if (this.alive()) this.hv.pauseDomain(this.domain);
  }

  onResume(): void {
    if (!this.alive()) return;
    this.hv.unpauseDomain(this.domain);
    this.kick();
  }

  private alive(): boolean {
    return this.domain.state === DomainState.Running && this.hv.domains.get(this.domain.id) === this.domain;
  }

  async runUntilStopped(stopped: () => boolean): Promise<Stop | null> {
    for (;;) {
      if (stopped()) return null;
      if (this.domain.state === DomainState.Crashed) return { kind: "killed", signal: Sig.SEGV };
      if (!this.alive()) return { kind: "exited", code: this.domain.shutdownCode };
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }
}

/**
 * The stub open on a machine: one at a time, since the CPU and the hypervisor have one debug
 * hook each. Asked again for the same domain before gdb came, the same port is answered.
 */
interface OpenStub {
  domain: Domain;
  port: number;
  waiting: boolean;
  /** Closes its listener and its gdb connection, if any. */
  close(): void;
}
const open = new WeakMap<Hypervisor, OpenStub>();

/**
 * Closes the machine's stub, if any: its listener and its gdb connection (gdb hears the remote
 * closed; the domain, if still there, runs on). For tsxend's close, and a domain gone.
 */
export function closeDebugStub(hv: Hypervisor): void {
  const cur = open.get(hv);
  open.delete(hv);
  cur?.close();
}

/**
 * Closes the machine's stub if its domain is d, which has gone (destroyed, saved, migrated,
 * restarted as another): its listener and its gdb, who hears the remote closed. Left open it
 * would hold the machine's one stub, and a port, for ever.
 */
export function closeDebugStubOf(hv: Hypervisor, d: Domain, log: (m: string) => void): void {
  const cur = open.get(hv);
  if (cur === undefined || cur.domain !== d) return;
  log(`gdb stub for domain ${d.id} (${d.name}) closed: the domain is gone`);
  closeDebugStub(hv);
}

/**
 * Opens a stub for domain d on 127.0.0.1:port (0: any free port) and answers where; it serves
 * one gdb and closes when that one detaches (the domain runs on) or kills (it is destroyed),
 * or when its domain goes (closeDebugStubOf). A stub whose domain went another way (not through
 * the toolstack) is closed here first.
 */
export async function openDebugStub(
  hv: Hypervisor,
  d: Domain,
  port: unknown,
  kick: () => void,
  destroy: () => void,
  log: (m: string) => void,
): Promise<{ host: string; port: number }> {
  const p = port === undefined ? 0 : port;
  if (typeof p !== "number" || !Number.isInteger(p) || p < 0 || p > 65535)
    throw new ToolstackError(`port must be a whole number from 0 to 65535, not ${JSON.stringify(port)}`);
  const host = "127.0.0.1";
  const was = open.get(hv);
  if (was !== undefined && hv.domains.get(was.domain.id) !== was.domain)
    closeDebugStubOf(hv, was.domain, log);
  const cur = open.get(hv);
  if (cur !== undefined) {
    if (cur.domain === d && cur.waiting && (p === 0 || p === cur.port)) return { host, port: cur.port };
    throw new ToolstackError(
      `domain ${cur.domain.id} (${cur.domain.name}) has the debugger stub (one domain at a time)`,
      409,
    );
  }
  const target = new DebugTarget(new DaemonMachine(hv, d, kick));
  let closeNow = (): void => {};
  const entry: OpenStub = { domain: d, port: p, waiting: true, close: () => closeNow() };
  open.set(hv, entry);
  const forget = (): void => {
    if (open.get(hv) === entry) open.delete(hv);
  };
  let listening: Awaited<ReturnType<typeof listenGdb>>;
  try {
    listening = await listenGdb(target, host, p, {
      onDetach: () => log(`gdb detached from domain ${d.id} (${d.name})`),
      onKill: () => {
        log(`domain ${d.id} (${d.name}) killed from gdb`);
        destroy();
      },
      onClose: forget,
      log,
    });
  } catch (e) {
    forget();
    throw new ToolstackError(`cannot listen on ${host}:${p}: ${(e as Error).message}`, 409);
  }
  entry.port = listening.port;
  let session: GdbSession | null = null;
  closeNow = () => {
    listening.server.close();
    session?.close();
  };
  // Closed before the listener was up (tsxend closing): close it now.
  if (open.get(hv) !== entry) closeNow();
  void listening.connected.then((s) => {
    entry.waiting = false;
    session = s;
    if (open.get(hv) !== entry) s.close();
  });
  log(`gdb stub for domain ${d.id} (${d.name}) on ${host}:${listening.port}`);
  return { host, port: listening.port };
}
