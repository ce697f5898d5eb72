/**
 * The gdb stub (src/tools/gdbstub.ts, debug_target.ts) driven by Debian's real gdb in batch mode
 * against guests/debug/target.c (built with -g -O0): breakpoints on functions, registers and
 * memory, stepping over a hypercall, watchpoints, a fault, threads, reverse execution; the
 * protocol's error replies and Ctrl-C with a raw client; and tsxen run's --record / --replay
 * of a typed session into the control-interface shell guest.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { apiHeaders, startDaemon } from "./helpers/daemon.js";
import { guestPath } from "./support/guests.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = join(ROOT, "dist/src/cli/main.js");
const GDB = "/usr/bin/gdb";
const TARGET = guestPath("dbg_target");
const FPU = guestPath("dbg_fpu");
const SHELL = guestPath("ev_ctrl_shell");
const noGdb = existsSync(GDB) ? false : "gdb is not installed (.ci/run installs it)";

interface Tsxen {
  port: Promise<number>;
  done: Promise<{ status: number | null; stdout: string; stderr: string }>;
  kill(): void;
}

/** `tsxen run args` with its stub on a free port (read from its stderr). */
function tsxen(args: string[]): Tsxen {
  const p = spawn(process.execPath, [MAIN, "run", ...args], { stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  let gotPort: (n: number) => void = () => {};
  const port = new Promise<number>((resolve) => {
    gotPort = resolve;
  });
  p.stdout.setEncoding("latin1");
  p.stdout.on("data", (s: string) => {
    stdout += s;
  });
  p.stderr.on("data", (b: Buffer) => {
    stderr += b.toString();
    const m = /waiting for gdb on [^:]+:(\d+)/.exec(stderr);
    if (m) gotPort(Number(m[1]));
  });
  const timer = setTimeout(() => p.kill(), 120_000);
  const done = new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    p.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
  return { port, done, kill: () => p.kill() };
}

const scratch = mkdtempSync(join(tmpdir(), "tsxen-gdb-"));

/**
 * gdb -batch with the target's symbols, connected to port, running the commands in order (an
 * error in one does not stop the next); its stdout and stderr together, in order. elf: the
 * symbols' file (the debug target unless given).
 */
async function gdb(port: number, commands: string[], elf = TARGET): Promise<string> {
  const ex = ["set pagination off", `target remote 127.0.0.1:${port}`, ...commands].flatMap((c) => [
    "-ex",
    c,
  ]);
  const file = join(scratch, `gdb-${port}.out`);
  const fd = openSync(file, "w");
  try {
    await new Promise<void>((resolve, reject) => {
      const p = spawn(GDB, ["-batch", "-nx", ...ex, elf], { stdio: ["ignore", fd, fd] });
      const timer = setTimeout(() => p.kill(), 120_000);
      p.on("error", reject);
      p.on("close", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  } finally {
    closeSync(fd);
  }
  return readFileSync(file, "utf8");
}

/** Symbol addresses from the ELF (nm), to check what gdb reports against the binary. */
function symbols(): Map<string, number> {
  const out = execFileSync("nm", [TARGET], { encoding: "utf8" });
  return new Map(
    out
      .split("\n")
      .map((l) => l.split(" "))
      .filter((f) => f.length === 3)
      .map((f) => [f[2], Number.parseInt(f[0], 16)]),
  );
}

/** Where the instruction `int $0x82` of the function fn is (objdump). */
function hypercallIn(fn: string): number {
  const out = execFileSync("objdump", ["-d", "--no-show-raw-insn", TARGET], { encoding: "utf8" });
  const body = out.split(`<${fn}>:`)[1]?.split("\n\n")[0] ?? "";
  const m = /^\s*([0-9a-f]+):\s+int\s+\$0x82/m.exec(body);
  assert.ok(m, `no int $0x82 in ${fn}`);
  return Number.parseInt(m[1], 16);
}

describe("gdb stub: real gdb against a guest with symbols", { skip: noGdb }, () => {
  it("breaks on a function; registers, memory (read, write, unmapped), threads", async () => {
    const t = tsxen([TARGET, "--gdb", "0"]);
    const out = await gdb(await t.port, [
      "info threads",
      "break writer_b",
      "continue",
      "print watched",
      "print counter",
      "info registers",
      "x/4xb &watched",
      "x/s banner",
      "x/x 0",
      "set var counter = 1000",
      "delete",
      "continue",
    ]);
    const r = await t.done;
    const sym = symbols();
    assert.match(out, /\* 1 {4}Thread 1 \(vcpu 0 of domain 1 \(dbg_target\.elf\)\)/);
    assert.match(out, /Breakpoint 1, writer_b \(v=1\) at debug\/target\.c:23/);
    // At writer_b(1): writer_a(1) ran (watched = 1) and counter += 1.
    assert.match(out, /\$1 = 1\n\$2 = 1\n/);
    const eip = /^eip\s+0x([0-9a-f]+)\s+0x[0-9a-f]+ <writer_b\+(\d+)>$/m.exec(out);
    assert.ok(eip, out);
    assert.equal(Number.parseInt(eip[1], 16), (sym.get("writer_b") ?? 0) + Number(eip[2]));
    assert.match(out, /^cs\s+0x819\s/m, "ring-1 flat code selector");
    assert.match(out, /^ss\s+0x821\s/m);
    const esp = /^esp\s+0x([0-9a-f]+)/m.exec(out);
    assert.ok(esp && Number.parseInt(esp[1], 16) >= 0xc0000000, "a kernel stack address");
    assert.match(out, /<watched>:\s+0x01\s+0x00\s+0x00\s+0x00/);
    assert.match(out, /<banner>:\s+"dbg: start\\n"/);
    assert.match(out, /Cannot access memory at address 0x0/);
    assert.match(out, /\[Inferior 1 \(Remote target\) exited normally\]/);
    assert.equal(r.status, 0, r.stderr);
    // counter = 1000 at writer_b(1): +2 +3, writer_c +5, ask_version +1, +100.
    assert.equal(r.stdout, "dbg: start\ndbg: watched=11 counter=1111 version=30000\n");
  });

  it("steps over a hypercall: next over the call, stepi over int $0x82", async () => {
    // printk's console write (in done(), after ask_version) is the next hypercall.
    const at = hypercallIn("printk");
    const t = tsxen([TARGET, "--gdb", "0"]);
    const out = await gdb(await t.port, [
      "break ask_version",
      "continue",
      "next",
      "print/x version",
      `break *0x${at.toString(16)}`,
      "continue",
      "info registers eip eax",
      "stepi",
      "info registers eip eax",
      "kill",
    ]);
    await t.done;
    assert.match(
      out,
      /Breakpoint 1, ask_version \(\) at debug\/target\.c:34\n34\t\tversion = HYPERVISOR_xen_version\(0\);\n35\t\tcounter\+\+;/,
    );
    assert.match(out, /\$1 = 0x30000/);
    // At the int, EAX is the hypercall's number (console_io, 18); one stepi later the call is
    // done: EIP after the int, EAX its result.
    const eips = [...out.matchAll(/^eip\s+0x([0-9a-f]+)/gm)].map((m) => Number.parseInt(m[1], 16));
    const eaxs = [...out.matchAll(/^eax\s+0x([0-9a-f]+)/gm)].map((m) => Number.parseInt(m[1], 16));
    assert.deepEqual(eips, [at, at + 2], out);
    assert.equal(eaxs[0], 18);
    assert.notEqual(eaxs[1], 18, "the hypercall ran and returned");
  });

  it("watchpoints: write (each change), read and access", async () => {
    const t = tsxen([TARGET, "--gdb", "0"]);
    const out = await gdb(await t.port, [
      "watch watched",
      "continue",
      "continue",
      "continue",
      "delete",
      "rwatch version",
      "continue",
      "delete",
      "awatch counter",
      "continue",
      "kill",
    ]);
    await t.done;
    const hits = [...out.matchAll(/Old value = (\d+)\nNew value = (\d+)\n(\w+) \(v=(\d)\)/g)].map((m) =>
      m.slice(1).join(" "),
    );
    // writer_a(2) stores the 2 already there: no change, no stop (gdb checks the value).
    assert.deepEqual(hits, ["0 1 writer_a 1", "1 2 writer_b 1", "2 4 writer_b 2"]);
    assert.match(out, /Hardware read watchpoint 2: version\n\nValue = 196608\n.* in done \(\)/);
    assert.match(out, /Hardware access \(read\/write\) watchpoint 3: counter\n\nValue = \d+\n/);
  });

  it("a fault with no handler stops as SIGSEGV at the faulting store; continuing crashes the domain", async () => {
    const t = tsxen([TARGET, "--gdb", "0", "--cmdline", "fault"]);
    // continue passes the signal on: Xen bounces the fault to the trap table's empty entry
    // (EIP 0, which faults again: gdb sees it); passed on and on, the bounce frames fill the
    // stack until one cannot be written and the domain crashes.
    const out = await gdb(await t.port, [
      "continue",
      "info registers eip",
      "x/i $pc",
      "continue",
      "handle SIGSEGV nostop noprint pass",
      "continue",
    ]);
    const r = await t.done;
    assert.match(
      out,
      /Program received signal SIGSEGV, Segmentation fault\.\n(0x[0-9a-f]+ in )?start_kernel \(si=0x[0-9a-f]+\) at debug\/target\.c:68\n68\t\t\t\*\(volatile int \*\)0 = 1;/,
    );
    assert.match(out, /=> 0x[0-9a-f]+ <start_kernel\+\d+>:\tmovl\s+\$0x1,\(%eax\)/);
    assert.match(out, /Program received signal SIGSEGV, Segmentation fault\.\n0x00000000 in \?\? \(\)\n/);
    assert.match(out, /Program terminated with signal SIGSEGV/);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /domain 1 \(dbg_target\.elf\) crashed/);
  });

  it("x87 registers: info float and $st0 show what the guest loaded; st0 and fctrl writes reach it", async () => {
    const t = tsxen([FPU, "--gdb", "0"]);
    const out = await gdb(
      await t.port,
      [
        "break fpu_loaded",
        "continue",
        "info float",
        "p $st0",
        "p $st1",
        "p $st2",
        "p $st3",
        "p/x $fstat",
        "set $st0 = 1234.75",
        // Round toward zero: the guest's fistp stores 1234, not the nearest 1235.
        "set $fctrl = 0x0f7f",
        "p $st0",
        "p/x $fctrl",
        "continue",
      ],
      FPU,
    );
    const r = await t.done;
    // fld1, fldpi, fldl 2.5: TOP 5, R5-R7 valid (tag word 0x03ff), the 80-bit encodings exact.
    assert.match(out, /^ {2}R7: Valid {3}0x3fff8000000000000000 \+1 /m);
    assert.match(out, /^ {2}R6: Valid {3}0x4000c90fdaa22168c235 \+3\.14159265358979323/m);
    assert.match(out, /^=>R5: Valid {3}0x4000a000000000000000 \+2\.5 /m);
    assert.match(out, /^ {2}R4: Empty {3}0x00000000000000000000$/m);
    assert.match(out, /Status Word: +0x2800 .*\n +TOP: 5/);
    assert.match(out, /Control Word: +0x037f /);
    assert.match(out, /Tag Word: +0x03ff\n/);
    // fldl's own: the ring-1 selectors, opcode DD /0 with a disp32 operand.
    assert.match(
      out,
      /Instruction Pointer: 0x819:0xc0[0-9a-f]{6}\nOperand Pointer: +0x821:0xc0[0-9a-f]{6}\nOpcode: +0xdd05/,
    );
    assert.match(out, /\$1 = 2\.5\n\$2 = 3\.14159265358979323\d*\n\$3 = 1\n\$4 = 0\n\$5 = 0x2800\n/);
    assert.match(out, /\$6 = 1234\.75\n\$7 = 0xf7f\n/);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "dbg: st0=1234\n");
  });

  it("reverse-continue to a watchpoint finds the last writer; reverse-stepi, -next, -step", async () => {
    const t = tsxen([TARGET, "--gdb", "0"]);
    const sym = symbols();
    const out = await gdb(await t.port, [
      "break done",
      "continue",
      "watch watched",
      "reverse-continue",
      "reverse-continue",
      "delete",
      "info registers eip",
      "reverse-stepi",
      "info registers eip",
      "reverse-step",
      "info registers eip",
      "reverse-next",
      "reverse-next",
      "info registers eip",
      "continue",
    ]);
    const r = await t.done;
    // Backwards, gdb shows the value now as Old and the one before the write as New.
    assert.match(
      out,
      /Hardware watchpoint 2: watched\n\nOld value = 11\nNew value = 6\nwriter_c \(v=5\) at debug\/target\.c:29/,
    );
    assert.match(out, /Old value = 6\nNew value = 3\nwriter_b \(v=3\) at debug\/target\.c:23/);
    const eips = [...out.matchAll(/^eip\s+0x([0-9a-f]+)/gm)].map((m) => Number.parseInt(m[1], 16));
    assert.equal(eips.length, 4, out);
    const wb = sym.get("writer_b") ?? 0;
    assert.ok(
      eips[0] > wb && eips[1] < eips[0] && eips[1] >= wb,
      `reverse-stepi went back in writer_b: ${eips}`,
    );
    // reverse-step goes to the start of line 23 (after the prologue, where break put it).
    assert.equal(eips[2], wb + 3);
    // reverse-next leaves writer_b for its call in start_kernel, then goes a line up.
    assert.match(
      out,
      /start_kernel \(si=0x[0-9a-f]+\) at debug\/target\.c:61\n61\t\t\twriter_b\(i\);\n60\t\t\tcounter \+= i;/,
    );
    const sk = sym.get("start_kernel") ?? 0;
    assert.ok(eips[3] > sk && eips[3] < wb + 0x1000, `in start_kernel: ${eips[3].toString(16)}`);
    // Forward again to the end: the console shows every line once (replays are silent).
    assert.match(out, /exited normally/);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "dbg: start\ndbg: watched=11 counter=112 version=30000\n");
  });
});

type ApiCall = (
  method: string,
  path: string,
  body?: unknown,
) => Promise<{ status: number; json: Record<string, unknown> }>;

/** Calls tsxend's API on port with its token, each call bounded (10 s). */
function api(port: number, token: string): ApiCall {
  return async (method, path, body) => {
    const r = await fetch(`http://127.0.0.1:${port}/api/v1${path}`, {
      method,
      headers: apiHeaders(token),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    return { status: r.status, json: (await r.json()) as Record<string, unknown> };
  };
}

/** p, or a rejection naming what after ms: every wait of the tests below is bounded. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** A domain of the debug target's made through the API, running its spin loop. */
async function spinner(call: ApiCall, name: string): Promise<void> {
  const made = await call("POST", "/domains", {
    file: `/${name}.cfg`,
    config: `name = "${name}"\nkernel = "${TARGET}"\nmemory = 16\nextra = "spin"\n`,
  });
  assert.equal(made.status, 201, JSON.stringify(made.json));
  for (let i = 0; i < 400; i++) {
    const c = await call("GET", `/domains/${name}/console`);
    if (String(c.json.text).includes("dbg: watched=")) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  assert.fail(`${name} never reached its spin loop`);
}

describe("xm debug: a stub for a domain of tsxend", { skip: noGdb }, () => {
  it("opens on loopback, stops the domain for gdb (watchpoint, threads), and lets it run on after detach", async () => {
    const { daemon, port, token } = await startDaemon();
    const call = api(port, token);
    try {
      await spinner(call, "spinner");
      assert.equal((await call("POST", "/domains/spinner/debug", { port: "x" })).status, 400);
      assert.equal((await call("POST", "/domains/spinner/debug", { port: 70000 })).status, 400);
      const opened = await call("POST", "/domains/spinner/debug", {});
      assert.equal(opened.status, 200, JSON.stringify(opened.json));
      assert.equal(opened.json.host, "127.0.0.1", "loopback only");
      const again = await call("POST", "/domains/spinner/debug", {});
      assert.equal(again.json.port, opened.json.port, "the same stub while gdb has not come");
      const out = await gdb(Number(opened.json.port), [
        "info threads",
        "watch counter",
        "continue",
        "delete",
        "detach",
      ]);
      assert.match(out, /Thread 1 \(vcpu 0 of domain 1 \(spinner\)\)/);
      // The counter++ of the spin loop in start_kernel wrote it (the stop is after the write).
      assert.match(out, /\nstart_kernel \(si=0x[0-9a-f]+\) at debug\/target\.c:\d+\n/);
      const change = /Old value = (\d+)\nNew value = (\d+)\n/.exec(out);
      assert.ok(change, out);
      assert.equal(Number(change[2]), Number(change[1]) + 1, "the spin loop's counter++");
      assert.match(out, /\[Inferior 1 \(Remote target\) detached\]/);
      const info = await call("GET", "/domains/spinner");
      assert.doesNotMatch(String(info.json.state), /p/, "running again after detach");
    } finally {
      await daemon.close();
    }
  });
});

describe("xm debug: the stub's life under tsxend", () => {
  it("one domain at a time (409); a stub is closed when its domain goes, its gdb dropped; breakpoints set and removed; no reverse", async () => {
    const { daemon, port, token } = await startDaemon();
    const call = api(port, token);
    const hasWord = symbols().get("has_word") ?? 0;
    try {
      await spinner(call, "gone");
      await spinner(call, "second");
      await spinner(call, "third");
      const first = await call("POST", "/domains/gone/debug", {});
      assert.equal(first.status, 200, JSON.stringify(first.json));
      const busy = await call("POST", "/domains/second/debug", {});
      assert.equal(busy.status, 409);
      assert.match(
        String(busy.json.error),
        /^domain \d+ \(gone\) has the debugger stub \(one domain at a time\)$/,
      );
      // Destroyed before gdb came: its stub is closed with it (no other request needed), and
      // no longer holds the machine's one stub.
      assert.equal((await call("POST", "/domains/gone/destroy")).status, 200);
      await assert.rejects(within(Rsp.open(Number(first.json.port)), 10_000, "connect"), /ECONNREFUSED/);
      const second = await call("POST", "/domains/second/debug", {});
      assert.equal(second.status, 200, JSON.stringify(second.json));

      // Breakpoints through tsxend's stub (a raw client): the spin loop calls has_word.
      const c = await within(Rsp.open(Number(second.json.port)), 10_000, "connect");
      assert.equal(await c.send("QStartNoAckMode"), "OK");
      assert.match(await c.send("?"), /^T05thread:1;$/);
      assert.doesNotMatch(await c.send("qSupported"), /Reverse/);
      assert.equal(await c.send(`Z0,${hasWord.toString(16)},1`), "OK");
      assert.equal(await c.send("c"), "T05swbreak:;thread:1;");
      assert.equal(await c.send("p8"), Buffer.from(new Uint32Array([hasWord]).buffer).toString("hex"));
      assert.equal(await c.send("c"), "T05swbreak:;thread:1;", "the loop comes back to it");
      assert.equal(await c.send(`z0,${hasWord.toString(16)},1`), "OK");
      c.raw("$c#63");
      await new Promise((resolve) => setTimeout(resolve, 200));
      c.raw("\x03");
      assert.equal(await c.reply(), "T02thread:1;", "no breakpoint left: only Ctrl-C stops it");
      // No reverse execution here (the other domains' time goes on): bs/bc are not supported.
      assert.equal(await c.send("bs"), "");
      assert.equal(await c.send("bc"), "");
      // The domain destroyed under a connected gdb: its connection is dropped at once.
      assert.equal((await call("POST", "/domains/second/destroy")).status, 200);
      await within(c.closed, 10_000, "the dropped gdb connection");
      const third = await call("POST", "/domains/third/debug", {});
      assert.equal(third.status, 200, JSON.stringify(third.json));
    } finally {
      await within(daemon.close(), 30_000, "tsxend's close");
    }
  });

  it("xm debug checks its arguments: a bad port, no such domain", async () => {
    const { daemon, port, stateDir } = await startDaemon();
    const xm = async (...args: string[]): Promise<{ code: number; stderr: string }> => {
      const r = await within(
        new Promise<{ code: number; stderr: string }>((resolve) => {
          const p = spawn(process.execPath, [MAIN, "xm", "--daemon", `127.0.0.1:${port}`, "debug", ...args], {
            env: { ...process.env, TSXEN_STATE_DIR: stateDir },
            stdio: ["ignore", "ignore", "pipe"],
          });
          let stderr = "";
          p.stderr.on("data", (b: Buffer) => {
            stderr += b.toString();
          });
          p.on("close", (code) => resolve({ code: code ?? -1, stderr }));
        }),
        60_000,
        `xm debug ${args.join(" ")}`,
      );
      return r;
    };
    try {
      const badPort = await xm("nosuch", "--port", "x");
      assert.deepEqual(badPort, {
        code: 1,
        stderr: 'xm: the port must be a number from 0 to 65535, not "x"\n',
      });
      const big = await xm("nosuch", "--port", "70000");
      assert.deepEqual(big, {
        code: 1,
        stderr: 'xm: the port must be a number from 0 to 65535, not "70000"\n',
      });
      const none = await xm("nosuch");
      assert.deepEqual(none, { code: 1, stderr: 'xm: no domain "nosuch"; no domains are running\n' });
    } finally {
      await within(daemon.close(), 30_000, "tsxend's close");
    }
  });
});

// Gated, as test/real-guests.test.ts: TSXEN_XENLINUX names a XenLinux 2.6.11 vmlinux
// (docs/real-guests.md), symbols without debugging information.
const VMLINUX = process.env.TSXEN_XENLINUX;
describe("gdb stub: XenLinux's vmlinux", {
  skip: noGdb || (VMLINUX === undefined && "TSXEN_XENLINUX is not set"),
}, () => {
  it("breaks in do_fork during boot (a backtrace through kernel_thread), watches jiffies tick in do_timer", async () => {
    const t = tsxen([VMLINUX ?? "", "--memory", "64", "--cmdline", "xencons=tty", "--gdb", "0"]);
    const out = await gdb(
      await t.port,
      ["break do_fork", "continue", "bt 3", "delete", "watch *(unsigned long *)&jiffies", "continue", "kill"],
      VMLINUX ?? "",
    );
    await t.done;
    assert.match(
      out,
      /Breakpoint 1, 0x[0-9a-f]+ in do_fork \(\)\n#0 {2}0x[0-9a-f]+ in do_fork \(\)\n#1 {2}0x[0-9a-f]+ in kernel_thread \(\)/,
    );
    const tick = /Old value = (\d+)\nNew value = (\d+)\n0x[0-9a-f]+ in do_timer \(\)/.exec(out);
    assert.ok(tick, out);
    assert.equal(Number(tick[2]), Number(tick[1]) + 1);
  });
});

/** A raw remote-protocol client: sends packets, reads replies (acks off after QStartNoAckMode). */
class Rsp {
  private buf = "";
  private waiters: Array<() => void> = [];
  /** Resolves when the stub closes the connection. */
  readonly closed: Promise<void>;
  private constructor(private readonly sock: import("node:net").Socket) {
    this.closed = new Promise((resolve) => sock.on("close", () => resolve()));
    sock.setEncoding("latin1");
    sock.on("data", (s: string) => {
      this.buf += s;
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static open(port: number): Promise<Rsp> {
    return new Promise((resolve, reject) => {
      const s = connect(port, "127.0.0.1", () => resolve(new Rsp(s)));
      s.on("error", reject);
    });
  }

  /** The next acknowledgement ('+' or '-'), or whatever byte comes first. */
  async ack(): Promise<string> {
    while (this.buf === "")
      await within(new Promise<void>((resolve) => this.waiters.push(resolve)), 30_000, "an ack");
    const a = this.buf[0];
    this.buf = this.buf.slice(1);
    return a;
  }

  raw(text: string): void {
    this.sock.write(text);
  }

  async send(data: string): Promise<string> {
    let sum = 0;
    for (const c of data) sum = (sum + c.charCodeAt(0)) & 0xff;
    this.sock.write(`$${data}#${sum.toString(16).padStart(2, "0")}`);
    return this.reply();
  }

  /** The next reply (at most 30 s away). */
  async reply(): Promise<string> {
    const give = Date.now() + 30_000;
    for (;;) {
      const m = /\$([^#]*)#[0-9a-f]{2}/.exec(this.buf);
      if (m) {
        this.buf = this.buf.slice(m.index + m[0].length);
        return m[1];
      }
      const more = new Promise<void>((resolve) => this.waiters.push(resolve));
      await within(more, Math.max(1, give - Date.now()), "a reply from the stub");
    }
  }

  close(): void {
    this.sock.end();
  }
}

describe("gdb stub: the protocol", () => {
  it("answers malformed and refused requests with errors, Ctrl-C stops a spinning guest, detach lets it run", async () => {
    const t = tsxen([TARGET, "--gdb", "0", "--cmdline", "spin"]);
    const c = await Rsp.open(await t.port);
    assert.match(await c.send("qSupported:multiprocess+;swbreak+"), /qXfer:features:read\+/);
    // A packet damaged on the way (its checksum wrong) is refused with '-'; sent again, it is answered.
    c.raw("$m0,4#00");
    assert.equal(await c.ack(), "-");
    assert.equal(await c.send("m0,4"), "E03");
    assert.equal(await c.send("QStartNoAckMode"), "OK");
    assert.match(
      await c.send("qXfer:features:read:target.xml:0,fff"),
      /^l<\?xml[\s\S]*org\.gnu\.gdb\.i386\.core[\s\S]*<\/target>/,
    );
    assert.equal(await c.send("qXfer:features:read:other.xml:0,10"), "E00");
    assert.equal(await c.send("m0,4"), "E03", "unmapped");
    assert.equal(await c.send("mzz,4"), "E01", "not hex");
    assert.equal(await c.send("m0,ffffff"), "E01", "too long");
    assert.equal(await c.send("Hg63"), "E02", "no vcpu 98");
    assert.equal(await c.send("T2"), "E02");
    assert.equal(await c.send("T1"), "OK");
    assert.equal(await c.send("M0,1:00"), "E03", "unmapped write");
    assert.equal(await c.send("Z2,c000a000,10"), "E04", "a 16-byte watchpoint");
    assert.equal(await c.send("Z9,0,1"), "E01");
    assert.equal(await c.send("P0a=11111111"), "E01", "a segment register");
    // Malformed writes are refused and change nothing; the stub goes on answering.
    const before = await c.send("g");
    for (const bad of [
      "X0,4:ab", // 4 bytes announced, 2 sent
      "Xzz,1:a",
      "X0,1",
      "M0,2:123",
      "Mc0000000,1:zz",
      "M0,1:00:",
      `G${before.slice(0, 100)}`, // not on a register's boundary
      `G${"zz"}${before.slice(2)}`,
      `G${before}00`,
      "G1234",
      // A valid eax, then cs changed (refused): nothing of it is set, not eax either.
      `G${before.startsWith("01020304") ? "05060708" : "01020304"}${before.slice(8, 80)}${before.slice(80, 84) === "ffff" ? "0000" : "ffff"}${before.slice(84)}`,
      "P18=ffff0100", // fctrl is 16 bits
      "P1f=00080000", // fop is 11
      "P10=00000000", // st0 is 80 bits
      "P10=zz",
      "P40=00000000",
      "p20",
    ])
      assert.match(await c.send(bad), /^E0[13]$/, bad);
    assert.equal(await c.send("g"), before, "nothing written");
    assert.equal(await c.send(`G${before}`), "OK", "all registers written back as they are");
    const pi80 = "35c26821a2daf0c90040";
    assert.equal(await c.send(`P10=${pi80}`), "OK");
    assert.equal(await c.send("p10"), pi80);
    assert.equal(await c.send("P18=7f0c0000"), "OK");
    assert.equal(await c.send("p18"), "7f0c0000");
    assert.notEqual(await c.send("g"), before);
    // At the first instruction there is nothing behind: reverse-continue meets the start.
    assert.equal(await c.send("bc"), "T05replaylog:begin;thread:1;");
    // Continue, then Ctrl-C: the guest spins in start_kernel.
    c.raw("$c#63");
    await new Promise((resolve) => setTimeout(resolve, 300));
    c.raw("\x03");
    assert.match(await c.reply(), /^T02thread:1;$/);
    const regs = await c.send("g");
    assert.equal(regs.length, 16 * 8 + 8 * 20 + 8 * 8);
    assert.equal(await c.send("D"), "OK");
    c.close();
    await new Promise((resolve) => setTimeout(resolve, 300));
    t.kill();
    const r = await t.done;
    assert.match(r.stderr, /gdb detached; the guest runs on/);
  });
});

describe("tsxen run --record / --replay", () => {
  it("a typed session into the shell guest replays byte for byte with the same end state; a changed log diverges", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tsxen-record-"));
    const log = join(dir, "session.rec");
    const typed = ["echo first line\n", "echo and a second\n", "cmdline\n", "poweroff\n"];
    const rec = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const p = spawn(process.execPath, [MAIN, "run", SHELL, "--record", log], {
        stdio: ["pipe", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      let step = 0;
      p.stdout.setEncoding("latin1");
      p.stdout.on("data", (s: string) => {
        stdout += s;
        // Type the next line at each prompt, a little later each time (another virtual time).
        const prompts = stdout.split("ctrl> ").length - 1;
        if (prompts > step && step < typed.length) {
          const line = typed[step++];
          setTimeout(() => p.stdin.write(line), 50 * step);
        }
      });
      p.stderr.on("data", (b: Buffer) => {
        stderr += b.toString();
      });
      p.stdin.on("error", () => {});
      p.on("close", (status) => resolve({ status, stdout, stderr }));
    });
    assert.equal(rec.status, 0, rec.stderr);
    assert.match(rec.stdout, /ctrl> echo first line\nfirst line\nctrl> echo and a second\nand a second\n/);
    const recorded = /recorded (\d+) inputs to .*; state hash ([0-9a-f]{64})/.exec(rec.stderr);
    assert.ok(recorded, rec.stderr);
    assert.ok(Number(recorded[1]) >= typed.length, "each line typed went in as an input");
    const lines = readFileSync(log, "utf8").trim().split("\n");
    const stamps = lines.slice(1, -1).map((l) => JSON.parse(l) as { ns: number; retired: number });
    assert.ok(
      stamps.every((s, i) => i === 0 || (s.ns >= stamps[i - 1].ns && s.retired > stamps[i - 1].retired)),
    );

    const rp = spawnResult([SHELL, "--replay", log]);
    assert.equal(rp.status, 0, rp.stderr);
    assert.equal(rp.stdout, rec.stdout, "the same console bytes");
    assert.match(rp.stderr, new RegExp(`state hash ${recorded[2]} \\(as recorded\\)`));

    // One typed byte changed: the guest answers differently, and the replay says so.
    const changed = lines.map((l, i) => {
      if (i !== 1) return l;
      const o = JSON.parse(l) as { console: string };
      const text = Buffer.from(o.console, "base64").toString("latin1").replace("first", "FIRST");
      return JSON.stringify({ ...o, console: Buffer.from(text, "latin1").toString("base64") });
    });
    const bad = join(dir, "changed.rec");
    writeFileSync(bad, `${changed.join("\n")}\n`);
    const rb = spawnResult([SHELL, "--replay", bad]);
    assert.equal(rb.status, 1);
    assert.match(rb.stdout, /FIRST line/);
    assert.match(rb.stderr, /replay diverged: the console output differs/);
    // Another kernel than the one recorded is refused before it runs.
    const other = spawnResult([TARGET, "--replay", log]);
    assert.equal(other.status, 2);
    assert.match(other.stderr, /recorded with another kernel/);
  });
});

function spawnResult(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, "run", ...args], { encoding: "latin1", timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
