/**
 * `tsxen run`'s loop over a SessionMachine, with what rides on it: --record FILE (every input
 * logged with its virtual-time stamp, the end state hashed), --replay FILE (the inputs taken
 * from the log instead of stdin; the console bytes and the end state must come out the same),
 * and --gdb [host:]port / --gdb-nowait (the gdb stub on the machine: before the first
 * instruction gdb is waited for; with --gdb-nowait the guest runs and gdb stops it when it
 * connects). While gdb holds the machine, the loop waits; once gdb detaches it runs on.
 */
import { createHash } from "node:crypto";
import { closeSync, openSync, readFileSync, readSync, writeFileSync } from "node:fs";
import type { Server } from "node:net";
import type { DiskSpec } from "../tools/config.js";
import { DebugTarget } from "../tools/debug_target.js";
import { listenGdb } from "../tools/gdbstub.js";
import { InputLog, RecordError, type RecordHeader, type SessionMachine, sha256 } from "../tools/replay.js";
import type { SessionEnd } from "../tools/session.js";

export interface DebugRunOptions {
  gdb?: string;
  gdbNowait?: string;
  record?: string;
  replay?: string;
}

/** "[host:]port" as --gdb takes it; the host is loopback unless given. */
export function parseGdbAddress(text: string): { host: string; port: number } {
  const m = /^(?:(.*):)?(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : Number.NaN;
  if (m === null || port > 65535) throw new Error(`--gdb wants [host:]port, not "${text}"`);
  return { host: m[1] === undefined || m[1] === "" ? "127.0.0.1" : m[1], port };
}

export interface RunLoopResult {
  end: SessionEnd | null;
  /** A replay that went a different way than its log (a message), or null. */
  divergence: string | null;
}

/** A disk image as a record knows it: the device the guest sees, its mode, size and SHA-256. */
interface DiskIdentity {
  dev: string;
  writable: boolean;
  bytes: number;
  sha256: string;
}

/** The size and SHA-256 of a file, read a MiB at a time (disk images may be large). */
function fileIdentity(path: string): { bytes: number; sha256: string } {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new Error(`cannot read disk image ${path}: ${(e as NodeJS.ErrnoException).message}`);
  }
  try {
    const h = createHash("sha256");
    const buf = Buffer.alloc(1 << 20);
    let bytes = 0;
    for (let n: number; (n = readSync(fd, buf, 0, buf.length, null)) > 0; bytes += n)
      h.update(buf.subarray(0, n));
    return { bytes, sha256: h.digest("hex") };
  } finally {
    closeSync(fd);
  }
}

/**
 * A record's options.disks, each field checked (the file is a tool input: a damaged one is
 * refused naming the field, never a TypeError).
 */
function recordedDisks(record: string, recorded: unknown): DiskIdentity[] {
  const bad = (field: string, want: string): RecordError =>
    new RecordError(`${record}: options.${field} must be ${want}: a damaged record`);
  if (!Array.isArray(recorded)) throw bad("disks", "a list of disks");
  return recorded.map((w: unknown, i) => {
    if (typeof w !== "object" || w === null || Array.isArray(w))
      throw bad(`disks[${i}]`, "an object {dev, writable, bytes, sha256}");
    const d = w as Record<string, unknown>;
    if (typeof d.dev !== "string") throw bad(`disks[${i}].dev`, "a string");
    if (typeof d.writable !== "boolean") throw bad(`disks[${i}].writable`, "true or false");
    if (typeof d.bytes !== "number" || !Number.isSafeInteger(d.bytes) || d.bytes < 0)
      throw bad(`disks[${i}].bytes`, "a whole number of bytes");
    if (typeof d.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(d.sha256))
      throw bad(`disks[${i}].sha256`, "a SHA-256 (64 hex digits)");
    return { dev: d.dev, writable: d.writable, bytes: d.bytes, sha256: d.sha256 };
  });
}

/** Why a replay's disks are not the recorded ones (naming the image file), or null. */
function diskChange(
  record: string,
  recorded: unknown,
  disks: readonly DiskSpec[],
  now: DiskIdentity[],
): string | null {
  const was = recordedDisks(record, recorded);
  if (was.length !== now.length || was.some((w, i) => w.dev !== now[i].dev || w.writable !== now[i].writable))
    return `${record} was recorded with the disks ${JSON.stringify(was.map((w) => w.dev))}, not ${JSON.stringify(now.map((d) => d.dev))}`;
  const i = now.findIndex((d, k) => d.bytes !== was[k].bytes || d.sha256 !== was[k].sha256);
  if (i < 0) return null;
  const [d, w] = [now[i], was[i]];
  return (
    `disk image ${disks[i].path} (${d.dev}) is not the one ${record} was recorded with: ${d.bytes} bytes, ` +
    `SHA-256 ${d.sha256}; recorded ${w.bytes} bytes, SHA-256 ${w.sha256} (the guest changes a writable ` +
    `image as it runs: replay against a copy made before recording)`
  );
}

/** The options a replay has that differ from its record's, as "name recorded (now value)". */
function optionChanges(recorded: Record<string, unknown>, now: Record<string, unknown>): string[] {
  const text = (v: unknown): string => (v === undefined ? "(none)" : JSON.stringify(v));
  return [...new Set([...Object.keys(recorded), ...Object.keys(now)])]
    .filter((k) => text(recorded[k]) !== text(now[k]))
    .map((k) => `${k} ${text(recorded[k])} (now ${text(now[k])})`);
}

/**
 * Checks the options together and reads a --replay log. options: what shapes the run (they
 * must match at replay); disks: the disk images, whose size and SHA-256 go into the record
 * (a replay with other contents is refused, naming the file).
 */
export function prepareDebugRun(
  opts: DebugRunOptions,
  image: Uint8Array,
  options: Record<string, unknown>,
  disks: readonly DiskSpec[] = [],
): { log: InputLog; replaying: boolean } {
  if (opts.gdb !== undefined && opts.gdbNowait !== undefined)
    throw new Error("--gdb and --gdb-nowait are one or the other");
  if (opts.record !== undefined && opts.replay !== undefined)
    throw new Error("--record and --replay are one or the other");
  const gdbAt = opts.gdb ?? opts.gdbNowait;
  if (gdbAt !== undefined) parseGdbAddress(gdbAt);
  // Hashing the images costs a read of each: only for a record or a replay.
  const logged = opts.record !== undefined || opts.replay !== undefined;
  const diskIds = logged
    ? disks.map((d) => ({ dev: d.dev, writable: d.writable, ...fileIdentity(d.path) }))
    : [];
  const all = { ...options, disks: diskIds };
  const header: RecordHeader = { tsxenRecord: 1, kernelSha256: sha256(image), options: all };
  if (opts.replay === undefined) return { log: new InputLog(header), replaying: false };
  let text: string;
  try {
    text = readFileSync(opts.replay, "utf8");
  } catch (e) {
    throw new Error(`cannot read record ${opts.replay}: ${(e as NodeJS.ErrnoException).message}`);
  }
  const log = InputLog.decode(text, opts.replay);
  if (log.header.kernelSha256 !== header.kernelSha256)
    throw new RecordError(`${opts.replay} was recorded with another kernel (its SHA-256 differs)`);
  const disk = diskChange(opts.replay, log.header.options.disks, disks, diskIds);
  if (disk !== null) throw new RecordError(disk);
  const changes = optionChanges(log.header.options, all);
  if (changes.length > 0)
    throw new RecordError(`${opts.replay} was recorded with other options: ${changes.join(", ")}`);
  return { log, replaying: true };
}

/**
 * gdb's hold on tsxen run's loop: when gdb connects, the loop stops between two slices and
 * serves it until it detaches (the loop runs on) or kills the guest (the run ends).
 */
class GdbHandover {
  /** Set when gdb has connected and waits for the loop to hand the machine over. */
  private attachNow: (() => void) | null = null;
  private connectedOnce: () => void = () => {};
  readonly connected = new Promise<void>((resolve) => {
    this.connectedOnce = resolve;
  });
  private finish: (how: "detached" | "killed") => void = () => {};
  private readonly finished = new Promise<"detached" | "killed">((resolve) => {
    this.finish = resolve;
  });
  server: Server | null = null;

  constructor(private readonly machine: SessionMachine) {}

  get wanted(): boolean {
    return this.attachNow !== null;
  }

  async listen(at: string, note: (m: string) => void): Promise<void> {
    const { host, port } = parseGdbAddress(at);
    let listening: Awaited<ReturnType<typeof listenGdb>>;
    try {
      listening = await listenGdb(new DebugTarget(this.machine), host, port, {
        beforeAttach: () =>
          new Promise<void>((resolve) => {
            this.attachNow = resolve;
            this.connectedOnce();
            this.machine.wakeUp();
          }),
        onDetach: () => {
          note("gdb detached; the guest runs on");
          this.finish("detached");
        },
        onKill: () => {
          note("killed from gdb");
          this.finish("killed");
        },
        log: note,
      });
    } catch (e) {
      throw new RecordError(`cannot listen for gdb on ${host}:${port}: ${(e as Error).message}`);
    }
    this.server = listening.server;
    note(`waiting for gdb on ${host}:${listening.port} (target remote ${host}:${listening.port})`);
  }

  /** Hands the machine to gdb; resolves when gdb is done with it. */
  serve(): Promise<"detached" | "killed"> {
    const go = this.attachNow;
    this.attachNow = null;
    go?.();
    return this.finished;
  }
}

/**
 * Runs the machine to its end (or limitNs, or until the keyboard closes while the guest is
 * idle), serving gdb if asked. The console bytes are the caller's (onConsole).
 */
export async function runLoop(
  machine: SessionMachine,
  opts: DebugRunOptions,
  limitNs: number,
  note: (m: string) => void,
  escaped: () => boolean,
): Promise<RunLoopResult> {
  machine.limitNs = limitNs;
  const gdbAt = opts.gdb ?? opts.gdbNowait;
  const gdb = gdbAt === undefined ? null : new GdbHandover(machine);
  let end: SessionEnd | null = null;
  try {
    if (gdb !== null && gdbAt !== undefined) {
      await gdb.listen(gdbAt, note);
      if (opts.gdb !== undefined) await gdb.connected;
    }
    for (;;) {
      if (gdb?.wanted) {
        const how = await gdb.serve();
        end = machine.lastEnd;
        if (how === "killed" || (end !== null && end.kind !== "idle")) break;
      }
      end = machine.slice(limitNs);
      if (end?.kind === "idle" && (await machine.waitForInput())) continue;
      if (end?.kind === "idle" && gdb?.wanted) continue;
      if (end !== null || machine.hv.nowNs() >= limitNs || escaped()) break;
      await new Promise((resolve) => setImmediate(resolve));
    }
  } finally {
    gdb?.server?.close();
  }
  return { end, divergence: machine.divergence };
}

/** Why a replay is not the recorded run (null when it is): inputs, console bytes, end state. */
export function replayVerdict(
  machine: SessionMachine,
  console: Uint8Array,
  divergence: string | null,
): string | null {
  if (divergence !== null) return divergence;
  const want = machine.log.end;
  if (want === null) return "the record has no end (the recording run did not finish)";
  if (machine.pendingInputs > 0) return `${machine.pendingInputs} logged inputs never went in`;
  const got = machine.endRecord(console);
  if (got.consoleBytes !== want.consoleBytes || got.consoleSha256 !== want.consoleSha256)
    return `the console output differs (${got.consoleBytes} bytes, ${want.consoleBytes} recorded)`;
  if (got.retired !== want.retired || got.ns !== want.ns)
    return `the run ended at instruction ${got.retired} (${got.ns} ns), recorded ${want.retired} (${want.ns} ns)`;
  if (got.stateHash !== want.stateHash)
    return `the end state's hash is ${got.stateHash}, recorded ${want.stateHash}`;
  return null;
}

/** Writes the record file of a run (--record). */
export function writeRecord(path: string, machine: SessionMachine, console: Uint8Array): void {
  machine.log.end = machine.endRecord(console);
  writeFileSync(path, machine.log.encode());
}
