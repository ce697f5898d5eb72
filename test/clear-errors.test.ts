/**
 * What a new user meets when something is wrong, each message as the CLI prints it: memory in
 * MiB, xm mem-set on a guest that does not take it, negative sizes, unknown xm commands, a
 * port in use, the interface revision a crashing guest may need, and machine memory sizes.
 * (A wrong or missing token is daemon-security.test.ts's, quoted there.)
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { Cpu } from "../src/cpu/cpu.js";
import { MAX_MACHINE_MIB, MachineMemory } from "../src/machine/memory.js";
import { startDaemon } from "./helpers/daemon.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CLI = join(ROOT, "dist/src/cli/main.js");
const GUESTS = join(ROOT, "guests");
const dir = mkdtempSync(join(tmpdir(), "tsxen-errors-"));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function tsxen(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
  return new Promise((resolve) =>
    execFile(
      process.execPath,
      [CLI, ...args],
      { cwd: ROOT, env: { ...process.env, ...env }, timeout: 60_000 },
      (err, stdout, stderr) => resolve({ code: err === null ? 0 : Number(err.code ?? 1), stdout, stderr }),
    ),
  );
}

/** A port something else listens on. */
async function busyPort(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const addr = server.address();
  assert.ok(addr !== null && typeof addr === "object");
  return { server, port: addr.port };
}

describe("clear errors", () => {
  it("a domain larger than the free machine memory is refused in MiB", async () => {
    const r = await tsxen(["run", "--memory", "200"]);
    assert.equal(r.code, 2);
    const m = /^tsxen: not enough free machine memory for 200 MiB: (\d+(?:\.\d)?) MiB are free\n$/.exec(
      r.stderr,
    );
    assert.ok(m, r.stderr);
    assert.ok(Number(m[1]) > 100 && Number(m[1]) < 128, m[1]);
  });

  it("xm mem-set and mem-max take -5 as a value and say it must be positive", async () => {
    // No tsxend is needed: the value is refused before any request.
    const set = await tsxen(["xm", "--daemon", "127.0.0.1:1", "mem-set", "d", "-5"]);
    assert.deepEqual([set.code, set.stderr], [1, "xm: memory must be positive: the target is -5 MiB\n"]);
    const max = await tsxen(["xm", "--daemon", "127.0.0.1:1", "mem-max", "d", "0"]);
    assert.deepEqual([max.code, max.stderr], [1, "xm: memory must be positive: the limit is 0 MiB\n"]);
  });

  it("an unknown xm command points at xm help", async () => {
    const r = await tsxen(["xm", "frobnicate"]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, "error: unknown command 'frobnicate'\n(`tsxen xm help` lists the commands)\n");
    // Not read from the word after tsxen: the command parsed is xm here too.
    const after = await tsxen(["--", "xm", "frobnicate"]);
    assert.equal(after.stderr, "error: unknown command 'frobnicate'\n(`tsxen xm help` lists the commands)\n");
    const typo = await tsxen(["xm", "lst"]);
    assert.equal(
      typo.stderr,
      "error: unknown command 'lst'\n(Did you mean list?)\n(`tsxen xm help` lists the commands)\n",
    );
  });

  it("an unknown tsxen command points at tsxen --help", async () => {
    const r = await tsxen(["frobnicate"]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, "error: unknown command 'frobnicate'\n(`tsxen --help` lists the commands)\n");
  });

  it("a port in use names the port and --port (tsxen web, tsxen daemon)", async () => {
    const { server, port } = await busyPort();
    try {
      const web = await tsxen(["web", "--port", String(port)]);
      assert.equal(web.code, 2);
      assert.equal(
        web.stderr,
        `tsxen: port ${port} on 127.0.0.1 is already in use (by another program, or another tsxen); choose another with --port\n`,
      );
      const daemon = await tsxen(["daemon", "--port", String(port), "--state-dir", join(dir, "busy")]);
      assert.equal(daemon.code, 1);
      assert.match(
        daemon.stderr,
        new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use .*--port\\n$`),
      );
    } finally {
      server.close();
    }
  });

  it("--abi 2005-07 on a March guest: the crash comes with the likely cause", async () => {
    const r = await tsxen(["run", "--abi", "2005-07"]);
    assert.equal(r.code, 1);
    const lines = r.stderr.trimEnd().split("\n");
    assert.match(lines[0], /^tsxen: domain 1 \(hello\.elf\) crashed: /);
    assert.match(
      lines[1],
      /^tsxen: the guest crashed \d+ ms into its run under the 2005-07 interface, as a kernel built for the 2005-03 interface does \(its image does not say which\): if it is one, run it with --abi 2005-03$/,
    );
    assert.equal(lines.length, 2);
    // The same guest under its own revision: no crash, no hint.
    const ok = await tsxen(["run", "--abi", "2005-03"]);
    assert.deepEqual([ok.code, ok.stderr], [0, ""]);
  });

  it("machine memory: 4095 MiB works (its last RAM byte too); above is refused saying why", async () => {
    const mem = new MachineMemory(MAX_MACHINE_MIB);
    const cpu = new Cpu(mem.bytes);
    // RAM ends at the device window below 4 GiB; the last word before it, above 2 GiB.
    const top = mem.ramEnd * 4096;
    cpu.physWrite32(top - 4, 0x12345678);
    cpu.physWrite16(top - 6, 0xbeef);
    assert.equal(mem.read32(top - 4), 0x12345678);
    assert.equal(cpu.physRead32(top - 4), 0x12345678);
    assert.equal(cpu.physRead16(top - 6), 0xbeef);
    assert.equal(cpu.physRead8(MAX_MACHINE_MIB * 2 ** 20), 0xff, "beyond the end reads as open bus");

    const tooBig = await tsxen(["daemon", "--machine-memory", "4096", "--state-dir", join(dir, "big")]);
    assert.deepEqual(
      [tooBig.code, tooBig.stderr],
      [2, "tsxend: --machine-memory 4096: at most 4095 MiB (a 32-bit machine without PAE addresses 4 GiB)\n"],
    );
    const hostMiB = Math.floor(totalmem() / 2 ** 20);
    if (hostMiB < MAX_MACHINE_MIB) {
      // A host too small for the largest machine: refused naming the host's memory.
      const r = await tsxen(["run", "--machine-memory", String(MAX_MACHINE_MIB)]);
      assert.deepEqual(
        [r.code, r.stderr],
        [
          2,
          `tsxen: --machine-memory ${MAX_MACHINE_MIB}: this host has ${hostMiB} MiB of memory (tsxen takes it as the guests first write each frame)\n`,
        ],
      );
      return;
    }
    const run = await tsxen(["run", "--machine-memory", String(MAX_MACHINE_MIB)]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /hello: goodbye\n$/);
    // tsxend at 4095 MiB starts and listens (it used to die on a signed 32-bit size at 2048).
    const d: ChildProcess = spawn(
      process.execPath,
      [
        CLI,
        "daemon",
        "--machine-memory",
        String(MAX_MACHINE_MIB),
        "--port",
        "0",
        "--state-dir",
        join(dir, "dmax"),
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    let errText = "";
    d.stdout?.on("data", (b: Buffer) => (out += b));
    d.stderr?.on("data", (b: Buffer) => (errText += b));
    const exited = new Promise((resolve) => d.once("exit", resolve));
    const deadline = Date.now() + 30_000;
    while (!/tsxend listening on/.test(out) && d.exitCode === null && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    d.kill("SIGTERM");
    await exited;
    assert.match(out, /tsxend listening on http:\/\/127\.0\.0\.1:\d+/, errText);
    assert.doesNotMatch(errText, /Invalid typed array length/);
  });

  it("xm mem-set says when the guest did not take the target", async () => {
    execFileSync("make", ["-s", "-C", GUESTS, "build/ev_counter.elf", "build/bench_idle.elf"], {
      stdio: "pipe",
    });
    const d = await startDaemon();
    const xm = (...args: string[]): Promise<Result> =>
      tsxen(["xm", "--daemon", `127.0.0.1:${d.port}`, ...args], { TSXEN_STATE_DIR: d.stateDir });
    try {
      const cfg = (name: string, kernel: string): string => {
        const path = join(dir, `${name}.cfg`);
        writeFileSync(path, `kernel = "${join(GUESTS, "build", kernel)}"\nmemory = 16\nname = "${name}"\n`);
        return path;
      };
      assert.equal((await xm("create", cfg("ctr", "ev_counter.elf"))).code, 0);
      // The counter answers its controller as Linux's ctrl_if did without a balloon driver:
      // an empty answer.
      const empty = await xm("mem-set", "ctr", "12");
      assert.deepEqual(
        [empty.code, empty.stderr],
        [
          1,
          'xm: domain "ctr" answered the memory request without taking it: its kernel has no balloon driver; its target is recorded as 12 MiB\n',
        ],
      );
      // Paused, it cannot answer: the wait is bounded.
      assert.equal((await xm("pause", "ctr")).code, 0);
      const start = Date.now();
      const paused = await xm("mem-set", "ctr", "10");
      assert.ok(Date.now() - start < 15_000);
      assert.deepEqual(
        [paused.code, paused.stderr],
        [
          1,
          'xm: domain "ctr" did not answer the memory request within 2 s (it is paused); its target is recorded as 10 MiB\n',
        ],
      );
      // A guest that never reads its control ring: no answer, and the wait is bounded.
      assert.equal((await xm("create", cfg("idle", "bench_idle.elf"))).code, 0);
      const silent = await xm("mem-set", "idle", "8");
      assert.deepEqual(
        [silent.code, silent.stderr],
        [
          1,
          'xm: domain "idle" did not answer the memory request within 2 s (no balloon driver is listening); its target is recorded as 8 MiB\n',
        ],
      );
    } finally {
      await d.daemon.close();
    }
  });
});
