/**
 * Configuration files as people write them, through the CLI: the Python subset (import os,
 * int(), if/else, % formatting) and name=value variables, for `tsxen run` and `xm create`.
 */
import assert from "node:assert/strict";
import { execFile, execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { startDaemon } from "./helpers/daemon.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CLI = join(ROOT, "dist/src/cli/main.js");
const HELLO = join(ROOT, "guests/hello.elf");
const dir = mkdtempSync(join(tmpdir(), "tsxen-config-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function run(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, "run", ...args], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 120_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** A config in the Python people write: the hello guest shows the command line it computed. */
const PYTHONIC = [
  "import os, sys",
  `kernel = "${HELLO}"`,
  "vmid = int(vmid)",
  'name = "hello%d" % vmid',
  "if vmid > 1:",
  '    extra = "big " + str(vmid * 16)',
  "else:",
  "    extra = 'small'",
  "memory = 32 if vmid < 10 else 64",
  "",
].join("\n");

describe("configuration files on the command line", () => {
  it("tsxen run examples/counter.cfg vmid=1 runs the README's counter", () => {
    execFileSync("make", ["-s", "-C", join(ROOT, "guests"), "build/ev_counter.elf"], { stdio: "pipe" });
    const r = run("examples/counter.cfg", "vmid=1", "--seconds", "1");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^counter: 1$/m);
  });

  it("tsxen run evaluates import os, int(), if/else and % with the command line's variables", () => {
    const cfg = file("py.cfg", PYTHONIC);
    const big = run(cfg, "vmid=2");
    assert.equal(big.status, 0, big.stderr);
    assert.match(big.stdout, /cmdline="big 32"/);
    const small = run(cfg, "vmid=1");
    assert.equal(small.status, 0, small.stderr);
    assert.match(small.stdout, /cmdline="small"/);
  });

  it("tsxen run names file:line and the construct outside the subset, exit 2", () => {
    const cfg = file("def.cfg", `kernel = "${HELLO}"\ndef check(v):\n    return v\n`);
    const r = run(cfg);
    assert.equal(r.status, 2);
    assert.equal(
      r.stderr,
      `tsxen: ${cfg}:2:1: "def" is not supported: tsxen reads a subset of Python: assignments, if/elif/else, import os/sys, int(), str(), arithmetic, comparisons, % formatting and lists\n`,
    );
    const missing = run(file("novar.cfg", PYTHONIC));
    assert.equal(missing.status, 2);
    assert.match(
      missing.stderr,
      /novar\.cfg:3:12: "vmid" is not defined \(.* on the command line as vmid=value\)/,
    );
    const kernel = run(HELLO, "vmid=1");
    assert.equal(kernel.status, 2);
    assert.match(
      kernel.stderr,
      /vmid=1: variables are for a configuration file, and .*hello\.elf is a kernel/,
    );
  });

  it("xm create takes a config that begins with import os", async () => {
    const d = await startDaemon();
    try {
      const cfg = file("xm.cfg", PYTHONIC);
      const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
        execFile(
          process.execPath,
          [CLI, "xm", "--daemon", `127.0.0.1:${d.port}`, "create", cfg, "vmid=3"],
          { env: { ...process.env, TSXEN_STATE_DIR: d.stateDir }, timeout: 30_000 },
          (err, stdout, stderr) =>
            resolve({ code: err === null ? 0 : Number(err.code ?? 1), stdout, stderr }),
        ),
      );
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /not a domain configuration file/);
      assert.match(r.stdout, /^Started domain hello3 \(id \d+\)$/m);
    } finally {
      await d.daemon.close();
    }
  });
});
