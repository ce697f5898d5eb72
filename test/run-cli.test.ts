/**
 * `tsxen run` as a process: exit status, stdout carrying exactly the guest's console, tsxen's
 * own messages on stderr (once), stdin fed to CONSOLEIO_read, and clear errors for bad input.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { launchDomain, startDomain } from "../src/tools/launch.js";
import { Hypervisor } from "../src/xen/hypervisor.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = join(ROOT, "dist/src/cli/main.js");
const BUILD = join(ROOT, "guests/build");

function tsxen(args: string[], input = ""): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, "run", ...args], {
    input,
    encoding: "utf8",
    timeout: 120_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** What the bundled hello guest prints, run in-process and started as `tsxen run` starts it. */
function helloConsole(): string {
  const out: number[] = [];
  const hv = new Hypervisor({ onConsole: (_d, b) => void out.push(...b) });
  const image = readFileSync(join(ROOT, "guests/hello.elf"));
  startDomain(hv, { name: "hello", image, memoryMiB: 32 }, () => {}, assert.fail);
  assert.equal(hv.run(10e9).kind, "shutdown");
  return Buffer.from(out).toString("utf8");
}

describe("tsxen run", () => {
  it("runs as the README says, `npx tsxen run`, from the repository (the built command is executable)", () => {
    const r = spawnSync("npx", ["--no-install", "tsxen", "run"], {
      cwd: ROOT,
      encoding: "utf8",
      timeout: 120_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, helloConsole());
  });

  it("the bundled hello: exit 0, stdout exactly the guest's console, stderr empty", () => {
    const r = tsxen([]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, "");
    assert.equal(r.stdout, helloConsole());
    assert.match(r.stdout, /hello: goodbye\n$/);
  });

  it("a crashing guest: exit 1, the reason on stderr once", () => {
    const r = tsxen([join(BUILD, "conf_writable_pt.elf"), "--seconds", "10"]);
    assert.equal(r.status, 1);
    const lines = r.stderr.split("\n").filter((l) => l !== "");
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^tsxen: domain 1 \(conf_writable_pt\.elf\) crashed: /);
    assert.match(r.stdout, /DONE passed=\d+ failed=0/);
  });

  it("--seconds 1 on a guest that never stops: exit 0 at the time limit", () => {
    const r = tsxen([join(BUILD, "ev_counter.elf"), "--seconds", "1"]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, "");
    assert.match(r.stdout, /counter: \d+/);
  });

  it("a truncated or garbage ELF: exit 2 with a clear message", () => {
    const dir = mkdtempSync(join(tmpdir(), "tsxen-run-"));
    const truncated = join(dir, "truncated.elf");
    writeFileSync(truncated, readFileSync(join(BUILD, "hello.elf")).subarray(0, 100));
    const garbage = join(dir, "garbage.elf");
    writeFileSync(garbage, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 1, 2, 3, 0xff, 0xee, 0xdd]));
    for (const f of [truncated, garbage]) {
      const r = tsxen([f]);
      assert.equal(r.status, 2, `${f}: ${r.stderr}`);
      assert.equal(r.stdout, "");
      assert.match(r.stderr, /^tsxen: .*(ELF|elf|truncated|image)/);
      assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
    }
    const missing = tsxen([join(dir, "missing.elf")]);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /^tsxen: cannot read kernel /);
  });

  it("a config file's abi is used when --abi is not given", () => {
    const dir = mkdtempSync(join(tmpdir(), "tsxen-run-"));
    const cfg = join(dir, "jul.cfg");
    writeFileSync(
      cfg,
      `kernel = "${join(BUILD, "jul/conf_xen_version.elf")}"\nmemory = 16\nabi = "2005-07"\n`,
    );
    const r = tsxen([cfg]);
    rmSync(dir, { recursive: true });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /DONE passed=\d+ failed=0/);
  });

  it("--memory abc: exit 2, says what is wrong", () => {
    const r = tsxen(["--memory", "abc"]);
    assert.equal(r.status, 2);
    assert.equal(r.stdout, "");
    assert.equal(r.stderr, 'tsxen: --memory must be a whole number, not "abc"\n');
  });

  it("stdin reaches the guest's CONSOLEIO_read", () => {
    const r = tsxen([join(BUILD, "ev_console_echo.elf"), "--seconds", "10"], "from the host\n");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^echo: from the host$/m);
    assert.match(r.stdout, /DONE passed=1 failed=0/);
  });
});

describe("console input (hv.consoleInput)", () => {
  it("bytes queued by the host before the guest runs come back from CONSOLEIO_read", () => {
    const out: number[] = [];
    const hv = new Hypervisor({ onConsole: (_d, b) => void out.push(...b), onLog: () => {} });
    launchDomain(hv, {
      name: "echo",
      image: readFileSync(join(BUILD, "ev_console_echo.elf")),
      memoryMiB: 16,
    });
    hv.consoleInput(new TextEncoder().encode("queued early\n"));
    assert.equal(hv.run(10e9).kind, "shutdown");
    const text = Buffer.from(out).toString("utf8");
    assert.match(text, /^echo: queued early$/m);
    assert.match(text, /DONE passed=1 failed=0/);
  });

  it("with nothing queued the guest sees no bytes (the check fails, it reports a crash)", () => {
    const out: number[] = [];
    const hv = new Hypervisor({ onConsole: (_d, b) => void out.push(...b), onLog: () => {} });
    launchDomain(hv, {
      name: "echo",
      image: readFileSync(join(BUILD, "ev_console_echo.elf")),
      memoryMiB: 16,
    });
    assert.equal(hv.run(10e9).kind, "crashed");
    assert.match(Buffer.from(out).toString("utf8"), /FAIL read_host_bytes/);
  });
});
