/**
 * A GDB remote serial protocol stub (gdb's "target remote"), over one TCP connection, for a
 * DebugTarget: i386 registers with a target description (qXfer:features:read target.xml),
 * memory at guest virtual addresses, software and hardware breakpoints and write/read/access
 * watchpoints (Z0-Z4), step and continue, Ctrl-C, vcpus as threads (qfThreadInfo, Hg/Hc, T),
 * detach and kill, and reverse step and continue (bs/bc) where the target can rewind. gdb is
 * all-stop here: the whole domain stops, and resumes, together.
 *
 * Everything gdb sends is checked: a malformed packet gets an error reply (E01 syntax, E02 no
 * such thread, E03 memory not accessible, E04 no room for the point) or, if unknown, the empty
 * reply, never an exception out of the stub.
 */
import { createServer, type Server, type Socket } from "node:net";
import { type DebugTarget, GDB_REGS, registerSize, Sig, type Stop, X87_CONTROL } from "./debug_target.js";

const PACKET_SIZE = 0x4000;
/** What memory a single m/M/X may move (gdb asks in PacketSize-sized pieces). */
const MAX_MEM = PACKET_SIZE / 2 - 32;

/** The i386 general registers as gdb names them (org.gnu.gdb.i386.core). */
const REGS: ReadonlyArray<[string, string, string?]> = [
  ["eax", "int32"],
  ["ecx", "int32"],
  ["edx", "int32"],
  ["ebx", "int32"],
  ["esp", "data_ptr"],
  ["ebp", "data_ptr"],
  ["esi", "int32"],
  ["edi", "int32"],
  ["eip", "code_ptr"],
  ["eflags", "i386_eflags"],
  ["cs", "int32"],
  ["ss", "int32"],
  ["ds", "int32"],
  ["es", "int32"],
  ["fs", "int32"],
  ["gs", "int32"],
];

const EFLAGS_FIELDS = [
  [0, "CF"],
  [1, ""],
  [2, "PF"],
  [4, "AF"],
  [6, "ZF"],
  [7, "SF"],
  [8, "TF"],
  [9, "IF"],
  [10, "DF"],
  [11, "OF"],
  [14, "NT"],
  [16, "RF"],
  [17, "VM"],
  [18, "AC"],
  [19, "VIF"],
  [20, "VIP"],
  [21, "ID"],
] as const;

/** The target description gdb reads with qXfer:features:read:target.xml. */
export const TARGET_XML = [
  '<?xml version="1.0"?>',
  '<!DOCTYPE target SYSTEM "gdb-target.dtd">',
  "<target>",
  "  <architecture>i386</architecture>",
  '  <feature name="org.gnu.gdb.i386.core">',
  '    <flags id="i386_eflags" size="4">',
  ...EFLAGS_FIELDS.map(([bit, name]) => `      <field name="${name}" start="${bit}" end="${bit}"/>`),
  "    </flags>",
  ...REGS.map(([name, type], i) => `    <reg name="${name}" bitsize="32" type="${type}" regnum="${i}"/>`),
  // gdb's i386 core feature has the x87 registers too (there is no SSE state to add).
  ...[0, 1, 2, 3, 4, 5, 6, 7].map(
    (i) => `    <reg name="st${i}" bitsize="80" type="i387_ext" regnum="${16 + i}" group="float"/>`,
  ),
  ...X87_CONTROL.map(({ name }) => `    <reg name="${name}" bitsize="32" type="int" group="float"/>`),
  "  </feature>",
  "</target>",
  "",
].join("\n");

function hex8(n: number): string {
  return (n & 0xff).toString(16).padStart(2, "0");
}

function toHex(bytes: Uint8Array | string): string {
  return Buffer.from(bytes).toString("hex");
}

function fromHex(h: string): Uint8Array | null {
  if (h.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(h)) return null;
  return Uint8Array.from(Buffer.from(h, "hex"));
}

/** A hexadecimal number of at most 8 digits (gdb's addresses and lengths here), or null. */
function hexNum(s: string | undefined): number | null {
  if (s === undefined || !/^[0-9a-fA-F]{1,8}$/.test(s)) return null;
  return Number.parseInt(s, 16);
}

/** Thread ids: gdb's thread n is vcpu n - 1; 0 means any, -1 all. */
function parseThread(s: string): number | null {
  if (s === "-1") return -1;
  const p = s.startsWith("p") ? s.slice(s.indexOf(".") + 1) : s;
  const n = hexNum(p);
  return n;
}

/** The stop reply for a stop. */
export function stopReply(stop: Stop): string {
  if (stop.kind === "exited") return `W${hex8(stop.code)}`;
  if (stop.kind === "killed") return `X${hex8(stop.signal)}`;
  let r = `T${hex8(stop.signal)}`;
  if (stop.watch) r += `${stop.watch.type}:${stop.watch.addr.toString(16)};`;
  if (stop.breakpoint) r += `${stop.breakpoint}break:;`;
  if (stop.history) r += `replaylog:${stop.history};`;
  return `${r}thread:${(stop.vcpu + 1).toString(16)};`;
}

/** A packet's checksum: its bytes' sum modulo 256. */
function checksum(data: string): number {
  let sum = 0;
  for (let i = 0; i < data.length; i++) sum = (sum + data.charCodeAt(i)) & 0xff;
  return sum;
}

/** Frames packets out of the byte stream: `$data#cs`, acks, and Ctrl-C (0x03). */
class PacketReader {
  private buf = "";
  constructor(
    private readonly onPacket: (data: string) => void,
    private readonly onInterrupt: () => void,
    private readonly onBadChecksum: () => void,
  ) {}

  push(chunk: Buffer): void {
    this.buf += chunk.toString("latin1");
    for (;;) {
      // Leading acks and stray bytes; Ctrl-C outside a packet is an interrupt.
      let i = 0;
      while (i < this.buf.length && this.buf[i] !== "$") {
        if (this.buf.charCodeAt(i) === 3) this.onInterrupt();
        i++;
      }
      this.buf = this.buf.slice(i);
      const hash = this.buf.indexOf("#");
      if (this.buf.length === 0 || hash < 0 || this.buf.length < hash + 3) {
        if (this.buf.length > PACKET_SIZE * 2) this.buf = ""; // runaway garbage
        return;
      }
      const data = this.buf.slice(1, hash);
      const cs = Number.parseInt(this.buf.slice(hash + 1, hash + 3), 16);
      this.buf = this.buf.slice(hash + 3);
      if (checksum(data) !== cs) this.onBadChecksum();
      else this.onPacket(unescapeBinary(data));
    }
  }
}

/** Binary data in X packets: 0x7d escapes the next byte (XOR 0x20). */
function unescapeBinary(data: string): string {
  if (!data.includes("}")) return data;
  let out = "";
  for (let i = 0; i < data.length; i++) {
    if (data[i] === "}" && i + 1 < data.length) out += String.fromCharCode(data.charCodeAt(++i) ^ 0x20);
    else out += data[i];
  }
  return out;
}

function frame(data: string): string {
  return `$${data}#${hex8(checksum(data))}`;
}

export interface GdbSessionEvents {
  /** gdb detached (D): the domain runs on. */
  onDetach?(): void;
  /** gdb killed the target (k, vKill). */
  onKill?(): void;
  /** The connection closed (after detach or kill, or dropped). */
  onClose?(): void;
  log?(message: string): void;
}

/**
 * One gdb connection to a target. Commands are handled one at a time; a resume holds the
 * queue until the target stops (Ctrl-C, meanwhile, interrupts it).
 */
export class GdbSession {
  private noAck = false;
  private gThread = -1;
  private cThread = -1;
  private queue: Promise<void> = Promise.resolve();
  private running = false;
  private closed = false;
  private ended = false;

  constructor(
    private readonly socket: Socket,
    private readonly target: DebugTarget,
    private readonly events: GdbSessionEvents = {},
  ) {
    const reader = new PacketReader(
      (p) => {
        if (!this.noAck) socket.write("+");
        this.queue = this.queue.then(() => this.handle(p)).catch((e) => this.events.log?.(`gdb stub: ${e}`));
      },
      () => {
        if (this.running) this.target.interrupt();
      },
      () => socket.write("-"),
    );
    socket.setNoDelay(true);
    socket.on("data", (b) => reader.push(b));
    socket.on("error", () => {});
    socket.on("close", () => {
      this.closed = true;
      if (!this.ended) {
        // A dropped connection is a detach: the guest runs on.
        this.ended = true;
        this.target.detach();
        this.events.onDetach?.();
      }
      this.events.onClose?.();
    });
  }

  /** Drops the connection (its owner is going): gdb hears that the remote closed. */
  close(): void {
    this.socket.destroy();
  }

  private send(data: string): void {
    if (!this.closed) this.socket.write(frame(data));
  }

  private vcpuFor(thread: number): ReturnType<DebugTarget["vcpu"]> {
    const id = thread <= 0 ? this.target.stoppedVcpu() : thread - 1;
    return this.target.vcpu(id);
  }

  private async handle(p: string): Promise<void> {
    if (this.ended) return;
    const reply = await this.command(p);
    if (reply !== null) this.send(reply);
  }

  /** The reply to one packet (null: none, the connection is going). */
  private async command(p: string): Promise<string | null> {
    const t = this.target;
    const head = p[0];
    switch (head) {
      case "?":
        return stopReply(t.lastStop ?? { kind: "signal", signal: Sig.TRAP, vcpu: t.stoppedVcpu() });
      case "g": {
        const v = this.vcpuFor(this.gThread);
        if (v === null) return "E02";
        let r = "";
        for (let n = 0; n < GDB_REGS; n++) r += toHex(t.register(v, n));
        return r;
      }
      case "G": {
        // All registers in order; a short G (at least the first 10) sets those it has, and
        // 'x' digits (unavailable) leave one alone. Every value is checked before any is set,
        // so a refused one leaves them all as they were.
        const v = this.vcpuFor(this.gThread);
        if (v === null) return "E02";
        const data = p.slice(1);
        const writes: Array<[number, Uint8Array]> = [];
        let at = 0;
        for (let n = 0; n < GDB_REGS && at < data.length; n++) {
          const h = data.slice(at, at + registerSize(n) * 2);
          at += h.length;
          const bytes = fromHex(h);
          if (bytes !== null && bytes.length === registerSize(n)) writes.push([n, bytes]);
          else if (!/^x+$/.test(h) || h.length !== registerSize(n) * 2) return "E01";
        }
        if (at !== data.length || at < 10 * 8) return "E01";
        if (!writes.every(([n, bytes]) => t.canWriteRegister(v, n, bytes))) return "E01";
        for (const [n, bytes] of writes) t.writeRegister(v, n, bytes);
        return "OK";
      }
      case "p": {
        const v = this.vcpuFor(this.gThread);
        const n = hexNum(p.slice(1));
        if (v === null) return "E02";
        if (n === null || n >= GDB_REGS) return "E01";
        return toHex(t.register(v, n));
      }
      case "P": {
        const v = this.vcpuFor(this.gThread);
        const m = /^P([0-9a-fA-F]{1,8})=([0-9a-fA-F]+)$/.exec(p);
        if (v === null) return "E02";
        const bytes = m ? fromHex(m[2]) : null;
        if (m === null || bytes === null) return "E01";
        return t.writeRegister(v, Number.parseInt(m[1], 16), bytes) ? "OK" : "E01";
      }
      case "m": {
        const [a, l] = p.slice(1).split(",");
        const addr = hexNum(a);
        const len = hexNum(l);
        const v = this.vcpuFor(this.gThread);
        if (addr === null || len === null || len > MAX_MEM) return "E01";
        if (v === null) return "E02";
        const bytes = t.readMemory(v, addr, len);
        return bytes.length === 0 && len > 0 ? "E03" : toHex(bytes);
      }
      case "M":
      case "X": {
        const colon = p.indexOf(":");
        const [a, l] = p.slice(1, colon < 0 ? undefined : colon).split(",");
        const addr = hexNum(a);
        const len = hexNum(l);
        const v = this.vcpuFor(this.gThread);
        if (colon < 0 || addr === null || len === null || len > MAX_MEM) return "E01";
        if (v === null) return "E02";
        const body = p.slice(colon + 1);
        const bytes = head === "M" ? fromHex(body) : Uint8Array.from(Buffer.from(body, "latin1"));
        if (bytes === null || bytes.length !== len) return "E01";
        return t.writeMemory(v, addr, bytes) ? "OK" : "E03";
      }
      case "Z":
      case "z": {
        const m = /^[Zz]([0-4]),([0-9a-fA-F]{1,8}),([0-9a-fA-F]{1,8})/.exec(p);
        if (m === null) return "E01";
        const type = Number(m[1]);
        const addr = Number.parseInt(m[2], 16);
        const kind = Number.parseInt(m[3], 16);
        if (head === "Z") return t.insertPoint(type, addr, kind) ? "OK" : "E04";
        return t.removePoint(type, addr, kind) ? "OK" : "E01";
      }
      case "H": {
        const th = parseThread(p.slice(2));
        if (th === null || (th > 0 && t.vcpu(th - 1) === null)) return "E02";
        if (p[1] === "g") this.gThread = th;
        else if (p[1] === "c") this.cThread = th;
        else return "E01";
        return "OK";
      }
      case "T": {
        const th = parseThread(p.slice(1));
        return th !== null && th > 0 && t.vcpu(th - 1) !== null ? "OK" : "E02";
      }
      case "c":
      case "s":
      case "C":
      case "S": {
        // c/s [addr], C/S sig[;addr]: resuming at another address is not offered.
        const sig = head === "C" || head === "S" ? hexNum(p.slice(1).split(";")[0]) : 0;
        if (sig === null) return "E01";
        if (head === "s" || head === "S") {
          if (this.cThread > 0 && this.cThread - 1 !== t.stoppedVcpu()) return "E02";
        }
        return this.resume(() => t.resume(head === "s" || head === "S", sig));
      }
      case "b": {
        if (!t.canReverse) return "";
        if (p === "bs") return this.resume(() => t.reverseStep());
        if (p === "bc") return this.resume(() => t.reverseContinue());
        return "";
      }
      case "D":
        this.ended = true;
        this.send("OK");
        t.detach();
        this.events.onDetach?.();
        this.socket.end();
        return null;
      case "k":
        this.ended = true;
        this.events.onKill?.();
        this.socket.end();
        return null;
      case "q":
      case "Q":
        return this.query(p);
      case "v":
        return this.vPacket(p);
      default:
        return "";
    }
  }

  private async resume(run: () => Promise<Stop>): Promise<string> {
    this.running = true;
    try {
      const stop = await run();
      return stopReply(stop);
    } finally {
      this.running = false;
    }
  }

  private query(p: string): string {
    const t = this.target;
    if (p.startsWith("qSupported")) {
      const features = [
        `PacketSize=${PACKET_SIZE.toString(16)}`,
        "qXfer:features:read+",
        "QStartNoAckMode+",
        "QPassSignals+",
      ];
      features.push("swbreak+", "hwbreak+");
      if (t.canReverse) features.push("ReverseStep+", "ReverseContinue+");
      return features.join(";");
    }
    if (p.startsWith("QPassSignals:")) {
      // gdb's `handle SIG nostop pass`: those faults go to Xen without a stop.
      const sigs = p
        .slice("QPassSignals:".length)
        .split(";")
        .filter((x) => x !== "");
      const nums = sigs.map((x) => hexNum(x));
      if (nums.some((n) => n === null)) return "E01";
      t.passSignals = new Set(nums as number[]);
      return "OK";
    }
    if (p === "QStartNoAckMode") {
      this.noAck = true;
      return "OK";
    }
    if (p.startsWith("qXfer:features:read:")) {
      const m = /^qXfer:features:read:([^:]*):([0-9a-fA-F]+),([0-9a-fA-F]+)$/.exec(p);
      if (m === null) return "E01";
      if (m[1] !== "target.xml") return "E00";
      const off = Number.parseInt(m[2], 16);
      const len = Number.parseInt(m[3], 16);
      const chunk = TARGET_XML.slice(off, off + len);
      return (off + len >= TARGET_XML.length ? "l" : "m") + chunk;
    }
    if (p === "qfThreadInfo")
      return `m${t
        .vcpus()
        .map((v) => (v.id + 1).toString(16))
        .join(",")}`;
    if (p === "qsThreadInfo") return "l";
    if (p === "qC") return `QC${(t.stoppedVcpu() + 1).toString(16)}`;
    if (p === "qAttached") return "1";
    if (p.startsWith("qThreadExtraInfo,")) {
      const th = parseThread(p.slice("qThreadExtraInfo,".length));
      const v = th !== null && th > 0 ? t.vcpu(th - 1) : null;
      if (v === null) return "E02";
      return toHex(`vcpu ${v.id} of domain ${t.domain.id} (${t.domain.name})`);
    }
    if (p === "qSymbol::") return "OK";
    return "";
  }

  private vPacket(p: string): string | Promise<string> | null {
    if (p === "vMustReplyEmpty") return "";
    if (p.startsWith("vKill")) {
      this.ended = true;
      this.send("OK");
      this.events.onKill?.();
      this.socket.end();
      return null;
    }
    return "";
  }
}

/**
 * Listens on host:port for one gdb and serves the target to it: the first connection is
 * taken (once beforeAttach has the machine between two slices), the listener then closes.
 * The protocol has no authentication: callers listen on loopback unless told otherwise.
 */
export function listenGdb(
  target: DebugTarget,
  host: string,
  port: number,
  events: GdbSessionEvents & { beforeAttach?: () => Promise<void> } = {},
): Promise<{ server: Server; port: number; connected: Promise<GdbSession> }> {
  let first: ((s: GdbSession) => void) | null = null;
  const connected = new Promise<GdbSession>((resolve) => {
    first = resolve;
  });
  let taken = false;
  const server = createServer((socket) => {
    if (taken) {
      socket.end();
      return;
    }
    taken = true;
    server.close();
    socket.pause();
    void (events.beforeAttach?.() ?? Promise.resolve()).then(() => {
      target.attach();
      const session = new GdbSession(socket, target, events);
      socket.resume();
      first?.(session);
    });
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      const addr = server.address();
      resolve({ server, port: typeof addr === "object" && addr !== null ? addr.port : port, connected });
    });
  });
}
