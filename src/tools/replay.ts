/**
 * Deterministic record and replay of a `tsxen run` session. The machine runs in virtual time,
 * so a run is a function of its boot options and of what comes in from outside: for tsxen run
 * that is the keyboard (console input; it attaches no uplink to the outside network, and the
 * toolstack's requests to the domain are its own). The log stamps every input with the virtual
 * time and the CPU's retired-instruction count at which it went in; replaying boots the same
 * kernel, runs the same slices and puts each input in at its stamp, so the guest sees the same
 * bytes at the same instruction and the run ends in the same state (machineStateHash).
 *
 * SessionMachine is also the gdb stub's machine for tsxen run (DebugMachine): it takes
 * checkpoints of the whole machine along the run (checkpoint.ts), and rewinding is restoring
 * the nearest one before the position wanted (or, without them, a fresh machine from the same
 * boot options) with the log replayed from there, which is what reverse execution stands on.
 *
 * The log is JSON lines: a header {"tsxenRecord": 1, "kernelSha256", "options"}, one line per
 * input {"ns", "retired", "console": base64}, and an end line {"end": {...}}.
 */
import { createHash } from "node:crypto";
import type { Hypervisor } from "../xen/hypervisor.js";
import { MachineCheckpoints, type MachinePoint } from "./checkpoint.js";
import { type DebugMachine, Sig, type Stop } from "./debug_target.js";
import type { GuestSession, SessionEnd } from "./session.js";

/** Guest time run between looks at the outside world (tsxen run's slice). */
export const SLICE_NS = 10e6;
/** Checkpoints a debugged run keeps (checkpoint.ts thins them beyond that). */
export const DEFAULT_CHECKPOINTS = 16;
/** Instructions between two checkpoints of a debugged run. */
export const CHECKPOINT_EVERY = 4_000_000;

export interface InputEvent {
  /** Virtual time (system time, ns) and CPU position at which the input went in. */
  ns: number;
  retired: number;
  console: Uint8Array;
  /** Ctrl-] typed at the terminal: the run ends after the slice it went in before. */
  escape?: true;
}

export interface RecordEnd {
  ns: number;
  retired: number;
  /** Console bytes the guest wrote, and their SHA-256. */
  consoleBytes: number;
  consoleSha256: string;
  /** machineStateHash at the end. */
  stateHash: string;
}

export interface RecordHeader {
  tsxenRecord: 1;
  kernelSha256: string;
  /** The boot options that shape the run (they must match on replay). */
  options: Record<string, unknown>;
}

export class RecordError extends Error {}

export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * The whole machine's state as a SHA-256: every byte of machine memory (all domains, the
 * hypervisor's frames, page tables), the CPU's registers, its retired count and virtual time.
 */
export function machineStateHash(hv: Hypervisor): string {
  const cpu = hv.cpu;
  const h = createHash("sha256");
  h.update(cpu.mem8);
  const regs = new Int32Array([
    ...cpu.regs,
    cpu.eip,
    cpu.getFlags(),
    cpu.cr0,
    cpu.cr2,
    cpu.cr3,
    cpu.cr4,
    cpu.cpl,
  ]);
  h.update(new Uint8Array(regs.buffer));
  h.update(`${cpu.retiredTotal}:${hv.nowNs()}:${[...cpu.segSel].join(",")}`);
  return h.digest("hex");
}

/** The log of one run: what came in, and how the run ended. */
export class InputLog {
  readonly events: InputEvent[] = [];
  end: RecordEnd | null = null;

  constructor(readonly header: RecordHeader) {}

  add(ev: InputEvent): void {
    // Inputs typed after a rewind may come before later ones: the log stays in time order.
    let i = this.events.length;
    while (i > 0 && this.events[i - 1].ns > ev.ns) i--;
    this.events.splice(i, 0, ev);
  }

  encode(): string {
    const lines = [JSON.stringify(this.header)];
    for (const e of this.events)
      lines.push(
        JSON.stringify(
          e.escape
            ? { ns: e.ns, retired: e.retired, escape: true }
            : { ns: e.ns, retired: e.retired, console: Buffer.from(e.console).toString("base64") },
        ),
      );
    if (this.end !== null) lines.push(JSON.stringify({ end: this.end }));
    return `${lines.join("\n")}\n`;
  }

  static decode(text: string, what: string): InputLog {
    const lines = text.split("\n").filter((l) => l.trim() !== "");
    const parse = (l: string, n: number): Record<string, unknown> => {
      try {
        const v: unknown = JSON.parse(l);
        if (typeof v === "object" && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
      } catch {}
      throw new RecordError(`${what}: line ${n + 1} is not a JSON object`);
    };
    if (lines.length === 0) throw new RecordError(`${what} is empty: not a tsxen record`);
    const head = parse(lines[0], 0);
    const hash = (v: unknown): boolean => typeof v === "string" && /^[0-9a-f]{64}$/.test(v);
    const options = head.options;
    if (
      head.tsxenRecord !== 1 ||
      !hash(head.kernelSha256) ||
      typeof options !== "object" ||
      options === null ||
      Array.isArray(options)
    )
      throw new RecordError(`${what} is not a tsxen record (version 1)`);
    const log = new InputLog(head as unknown as RecordHeader);
    const num = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
    lines.slice(1).forEach((l, i) => {
      const o = parse(l, i + 1);
      if (log.end !== null) throw new RecordError(`${what}: line ${i + 2} comes after the end record`);
      if (o.end !== undefined) {
        // Every field of the end is compared at replay: each must be there, of its type.
        const e = o.end as Partial<RecordEnd> | null;
        if (
          typeof e !== "object" ||
          e === null ||
          !num(e.ns) ||
          !num(e.retired) ||
          !num(e.consoleBytes) ||
          !hash(e.consoleSha256) ||
          !hash(e.stateHash)
        )
          throw new RecordError(`${what}: line ${i + 2}: a damaged end record`);
        log.end = {
          ns: e.ns,
          retired: e.retired,
          consoleBytes: e.consoleBytes,
          consoleSha256: e.consoleSha256 as string,
          stateHash: e.stateHash as string,
        };
        return;
      }
      if (!num(o.ns) || !num(o.retired) || (typeof o.console !== "string" && o.escape !== true))
        throw new RecordError(`${what}: line ${i + 2}: an input needs ns, retired and console (or escape)`);
      const prev = log.events.at(-1);
      if (prev !== undefined && (o.ns < prev.ns || o.retired < prev.retired))
        throw new RecordError(`${what}: line ${i + 2}: inputs out of order`);
      if (o.escape === true)
        log.events.push({ ns: o.ns, retired: o.retired, console: new Uint8Array(0), escape: true });
      else {
        // Node's decoder skips characters outside base64: only what encodes back the same is taken.
        const text = o.console as string;
        const console = Buffer.from(text, "base64");
        if (console.toString("base64") !== text)
          throw new RecordError(
            `${what}: line ${i + 2}: the console input ${JSON.stringify(text)} is not base64`,
          );
        log.events.push({ ns: o.ns, retired: o.retired, console });
      }
    });
    return log;
  }
}

/** A fresh machine and session booted from the run's options. */
export type SessionFactory = () => GuestSession;

/**
 * tsxen run's machine: a GuestSession run in slices of guest time, its inputs logged (live) or
 * taken from a log (replay, and after a rewind until the log runs out).
 */
export class SessionMachine implements DebugMachine {
  session: GuestSession;
  /** The next logged input to put in. */
  private next = 0;
  /** Set when a replayed input went in at another position than logged. */
  divergence: string | null = null;
  /**
   * Those waiting in host time for input or the debugger (the run loop's waitForInput, a
   * debugged run's idle wait): each one is woken, none takes another's place.
   */
  private readonly wakers = new Set<() => void>();
  /** Ctrl-] was typed (live) or replayed: the run ends after this slice. */
  escaped = false;
  /** True once nothing more will come in (stdin ended, or replaying only). */
  inputClosed = false;
  /** How the last slice ended (null: it went on). */
  lastEnd: SessionEnd | null = null;
  /** tsxen run's --seconds, in guest ns: the run ends there, under gdb too. */
  limitNs = Number.POSITIVE_INFINITY;

  /** Whether rewind() gives the same run again (not with disks, whose contents it cannot undo). */
  readonly canRewind: boolean;
  /** Checkpoints of this run (with the log cursor and how the last slice ended); null: none taken. */
  readonly checkpoints: MachineCheckpoints<{ next: number; lastEnd: SessionEnd | null }> | null;
  /** The factory's state outside the machine that its checkpoints keep too (a console count). */
  private readonly hostState: readonly object[];
  /** The furthest position the run has reached: instructions run again below it were replayed. */
  private frontier = 0;
  /** Instructions run again after a rewind (below the furthest position reached). */
  replayed = 0;
  /** gdb changed memory or registers: the run is off its record until the next rewind. */
  private offRecord = false;

  constructor(
    private readonly make: SessionFactory,
    readonly log: InputLog,
    opts: {
      rewindable?: boolean;
      /** Take a checkpoint every so many instructions (none when absent), keeping at most checkpointKeep. */
      checkpointEvery?: number;
      checkpointKeep?: number;
      hostState?: readonly object[];
    } = {},
  ) {
    this.session = make();
    this.canRewind = opts.rewindable ?? true;
    this.hostState = opts.hostState ?? [];
    this.checkpoints =
      opts.checkpointEvery === undefined || !this.canRewind
        ? null
        : new MachineCheckpoints(opts.checkpointEvery, opts.checkpointKeep ?? DEFAULT_CHECKPOINTS);
    this.checkpoint();
  }

  /** Takes a checkpoint here if one is due. */
  private checkpoint(): void {
    const cps = this.checkpoints;
    if (cps !== null && !this.offRecord && cps.due(this.hv)) this.checkpointHere();
  }

  /** Takes a checkpoint here (between two slices: at an instruction boundary). */
  checkpointHere(): MachinePoint<{ next: number; lastEnd: SessionEnd | null }> {
    if (this.checkpoints === null) throw new Error("this machine takes no checkpoints");
    const extra = { next: this.next, lastEnd: this.lastEnd };
    return this.checkpoints.take(this.hv, [this.session, ...this.hostState], extra);
  }

  /** After the session ran from position `before`: the replayed count, a checkpoint if due. */
  private ran(before: number): void {
    const now = this.hv.cpu.retiredTotal;
    if (before < this.frontier) this.replayed += Math.min(now, this.frontier) - before;
    this.frontier = Math.max(this.frontier, now);
    this.checkpoint();
  }

  /** gdb wrote the guest's memory or registers: no checkpoints until the run is back on record. */
  noteWrite(): void {
    this.offRecord = true;
  }

  get hv(): Hypervisor {
    return this.session.hv;
  }

  get domain() {
    return this.session.domain;
  }

  /** Live keyboard input: logged with its stamp, then given to the guest. */
  input(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.log.add({ ns: this.hv.nowNs(), retired: this.hv.cpu.retiredTotal, console: Uint8Array.from(bytes) });
    // Checkpoints further on were of a run without this input.
    this.checkpoints?.dropAfter(this.hv.cpu.retiredTotal);
    this.next++;
    this.session.input(bytes);
    this.wakeUp();
  }

  /** Ctrl-] at the terminal: logged with its stamp (a replay ends where this run does). */
  escape(): void {
    this.log.add({
      ns: this.hv.nowNs(),
      retired: this.hv.cpu.retiredTotal,
      console: new Uint8Array(0),
      escape: true,
    });
    this.next++;
    this.escaped = true;
    this.inputClosed = true;
    this.wakeUp();
  }

  /** Logged inputs not yet replayed. */
  get pendingInputs(): number {
    return this.log.events.length - this.next;
  }

  /** Puts in the logged inputs due at the current time. */
  private injectDue(): void {
    const hv = this.hv;
    const now = hv.nowNs();
    while (this.next < this.log.events.length && this.log.events[this.next].ns <= now) {
      const e = this.log.events[this.next++];
      if ((e.ns !== now || e.retired !== hv.cpu.retiredTotal) && this.divergence === null)
        this.divergence = `input ${this.next} was logged at ${e.ns} ns (instruction ${e.retired}) but went in at ${now} ns (instruction ${hv.cpu.retiredTotal})`;
      if (e.escape) this.escaped = true;
      else this.session.input(e.console);
    }
  }

  /** The time of the next logged input, or +inf. */
  private nextInputNs(): number {
    return this.next < this.log.events.length ? this.log.events[this.next].ns : Number.POSITIVE_INFINITY;
  }

  /**
   * One slice of tsxen run's loop: due inputs in, then guest time up to SLICE_NS further (or
   * limitNs). Returns how the session ended, or null while it goes on.
   */
  slice(limitNs = Number.POSITIVE_INFINITY): SessionEnd | null {
    this.injectDue();
    const before = this.hv.cpu.retiredTotal;
    this.lastEnd = this.session.runUntil(Math.min(this.hv.nowNs() + SLICE_NS, limitNs));
    this.ran(before);
    return this.lastEnd;
  }

  /** Waits (host time) until input comes or wakeUp is called; false once input has closed. */
  waitForInput(): Promise<boolean> {
    if (this.pendingInputs > 0) return Promise.resolve(true);
    if (this.inputClosed) return Promise.resolve(false);
    return this.nap().then(() => true);
  }

  /** Resolves at the next wakeUp (input, the debugger), or after ms of host time. */
  private nap(ms = Number.POSITIVE_INFINITY): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wakers.delete(done);
        resolve();
      };
      const timer = Number.isFinite(ms) ? setTimeout(done, ms) : undefined;
      this.wakers.add(done);
    });
  }

  wakeUp(): void {
    for (const w of [...this.wakers]) w();
  }

  async runUntilStopped(stopped: () => boolean): Promise<Stop | null> {
    for (;;) {
      if (stopped()) return null;
      if (this.hv.nowNs() >= this.limitNs) return { kind: "exited", code: 0 };
      const end = this.slice(this.limitNs);
      if (stopped()) return null;
      if (end !== null) {
        if (end.kind === "idle") {
          // Nothing happens until input comes: wait for it, or for the debugger.
          if (this.pendingInputs > 0) continue;
          await this.nap(20);
          continue;
        }
        return end.kind === "crashed"
          ? { kind: "killed", signal: Sig.SEGV }
          : { kind: "exited", code: "reason" in end ? end.reason : 0 };
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  rewind(): void {
    this.session = this.make();
    this.next = 0;
    this.lastEnd = null;
    this.offRecord = false;
    if (this.checkpoints !== null) {
      // The old machine's checkpoints are of other objects.
      this.checkpoints.dropAfter(-1);
      this.checkpoint();
    }
  }

  /** Back to the last checkpoint at or before position `retired` (boot without one). */
  rewindTo(retired: number): void {
    const p = this.checkpoints?.nearest(retired);
    if (this.checkpoints === null || p === undefined) {
      this.rewind();
      return;
    }
    this.checkpoints.restore(this.hv, p);
    this.next = p.extra.next;
    this.lastEnd = p.extra.lastEnd;
    this.offRecord = false;
  }

  async approach(retired: number): Promise<void> {
    for (;;) {
      const hv = this.hv;
      const left = retired - hv.cpu.retiredTotal;
      if (left <= 0) return;
      this.injectDue();
      // Cycles advance at least as fast as instructions retire: this limit never overshoots.
      const limitNs = Math.min(hv.clock.ns(hv.nowCycles() + left), hv.nowNs() + SLICE_NS, this.nextInputNs());
      const before = hv.cpu.retiredTotal;
      const end = this.session.runUntil(limitNs);
      this.ran(before);
      if (end !== null && end.kind !== "idle") return;
      if (
        hv.cpu.retiredTotal === before &&
        (end !== null || limitNs <= hv.nowNs()) &&
        this.pendingInputs === 0
      )
        return;
    }
  }

  /** The end record of this run as it stands. */
  endRecord(consoleBytes: Uint8Array): RecordEnd {
    const hv = this.hv;
    return {
      ns: hv.nowNs(),
      retired: hv.cpu.retiredTotal,
      consoleBytes: consoleBytes.length,
      consoleSha256: sha256(consoleBytes),
      stateHash: machineStateHash(hv),
    };
  }
}
