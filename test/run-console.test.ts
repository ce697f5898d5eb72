/**
 * `tsxen run` serving the control interface as xend did, driven as a person at a terminal
 * would: the ctrl_shell guest prints only over its control interface (CMSG_CONSOLE on the tx
 * ring) and reads the keyboard from the controller's CMSG_CONSOLE requests, as a 2005
 * XenLinux domU does. Checked: stdout bytes, echo of typed input (also more than the rings
 * hold at once), exit statuses for poweroff, crash and reboot, a reboot rebuilding the domain
 * from the same kernel, ramdisk and command line, xend's restart rule, --ramdisk's bytes as the
 * guest sees them, and a configuration's ramdisk / root / extra.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { fnv1a } from "./support/fnv.js";
import { guestPath } from "./support/guests.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = join(ROOT, "dist/src/cli/main.js");
const SHELL = guestPath("ev_ctrl_shell");
const PROMPT = /ctrl> $/;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `tsxen run args`, typing each step's text once stdout (past what the previous step
 * saw) matches its pattern; stdin stays open until the process exits.
 */
function session(args: string[], steps: Array<[RegExp, string]>, timeoutMs = 90_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [MAIN, "run", ...args], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let seen = 0;
    let step = 0;
    const timer = setTimeout(() => {
      p.kill();
      reject(new Error(`timed out at step ${step}; stdout so far:\n${stdout}\nstderr:\n${stderr}`));
    }, timeoutMs);
    const advance = (): void => {
      while (step < steps.length) {
        const [want, text] = steps[step];
        const m = want.exec(stdout.slice(seen));
        if (m === null) return;
        seen += m.index + m[0].length;
        step++;
        p.stdin.write(text);
      }
    };
    p.stdout.setEncoding("latin1");
    p.stdout.on("data", (s: string) => {
      stdout += s;
      advance();
    });
    p.stderr.on("data", (b: Buffer) => {
      stderr += b.toString();
    });
    p.stdin.on("error", () => {});
    p.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "tsxen-run-console-"));
}

describe("tsxen run: the console over the control interface", () => {
  it("prints CMSG_CONSOLE output, echoes typed lines, exit 0 at poweroff", async () => {
    const r = await session(
      [SHELL],
      [
        [PROMPT, "echo over the ring\n"],
        [PROMPT, "poweroff\n"],
      ],
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, "");
    assert.equal(
      r.stdout,
      'ctrl_shell: boot cmdline=""\nmodule: none\n' +
        "ctrl> echo over the ring\nover the ring\n" +
        "ctrl> poweroff\nctrl_shell: powering off\n",
    );
  });

  it("typed input larger than the control ring holds arrives whole and in order", async () => {
    // 40 commands in one write: about 700 bytes against 8 messages of 60 bytes on the ring.
    const lines = Array.from({ length: 40 }, (_, i) => `echo line ${i} ${"x".repeat(i % 9)}`);
    const r = await session(
      [SHELL],
      [
        [PROMPT, `${lines.join("\n")}\n`],
        [/echo line 39 x{3}\nline 39 x{3}\nctrl> $/, "poweroff\n"],
      ],
    );
    assert.equal(r.status, 0, r.stderr);
    const echoed = [...r.stdout.matchAll(/^line (\d+) x*$/gm)].map((m) => Number(m[1]));
    assert.deepEqual(
      echoed,
      lines.map((_, i) => i),
    );
  });

  it("crash: exit 1, the reason on stderr", async () => {
    const r = await session([SHELL], [[PROMPT, "crash\n"]]);
    assert.equal(r.status, 1);
    assert.match(r.stdout, /ctrl_shell: crashing\n$/);
    assert.match(r.stderr, /^tsxen: domain 1 \(ev_ctrl_shell\.elf\) crashed: .*reason crash/);
  });

  it("reboot rebuilds the domain from the same kernel, ramdisk and command line; poweroff then ends the run", async () => {
    const dir = tempDir();
    const initrd = join(dir, "initrd.img");
    const bytes = randomBytes(70_000);
    writeFileSync(initrd, bytes);
    const r = await session(
      [SHELL, "--ramdisk", initrd, "--cmdline", "root=/dev/ram0 init=/bin/sh"],
      [
        [PROMPT, "reboot\n"],
        [PROMPT, "echo second boot\n"],
        [PROMPT, "poweroff\n"],
      ],
    );
    assert.equal(r.status, 0, r.stderr);
    const boots = r.stdout.split("ctrl_shell: rebooting\n");
    assert.equal(boots.length, 2, r.stdout);
    const banner = new RegExp(
      `^ctrl_shell: boot cmdline="root=/dev/ram0 init=/bin/sh"\\nmodule: start=0x[0-9a-f]+ len=70000 fnv=${fnv1a(bytes)}\\n`,
    );
    for (const b of boots) assert.match(b, banner);
    assert.match(boots[1], /second boot\n/);
    assert.equal(r.stderr, "tsxen: domain 1 (ev_ctrl_shell.elf) shut down: reboot; restarted as domain 2\n");
  });

  it("--no-reboot: a reboot ends the run with exit status 3", async () => {
    const r = await session([SHELL, "--no-reboot"], [[PROMPT, "reboot\n"]]);
    assert.equal(r.status, 3, r.stderr);
    assert.equal(r.stderr, "tsxen: domain 1 shut down: reboot\n");
    assert.equal(r.stdout.match(/ctrl_shell: boot/g)?.length, 1);
  });

  it("on_crash = restart restarts, but not twice within 20 s of guest time (xend's rule)", async () => {
    const dir = tempDir();
    const cfg = join(dir, "crashy.cfg");
    writeFileSync(cfg, `kernel = "${SHELL}"\nname = "crashy"\nmemory = 16\non_crash = "restart"\n`);
    const r = await session(
      [cfg],
      [
        [PROMPT, "crash\n"],
        [PROMPT, "crash\n"],
      ],
    );
    assert.equal(r.status, 1);
    assert.equal(r.stdout.match(/ctrl_shell: boot/g)?.length, 2, r.stdout);
    assert.match(r.stderr, /domain 1 \(crashy\) crashed; restarted as domain 2\n/);
    assert.match(
      r.stderr,
      /domain 2 \(crashy\) crashed again within 20 s of its last restart; not restarting it\n$/,
    );
  });

  it("--ramdisk: the guest finds the file's bytes as its start_info module", async () => {
    const dir = tempDir();
    const initrd = join(dir, "odd-size.cpio.gz");
    // Not a multiple of the page size, and spanning several pages.
    const bytes = randomBytes(3 * 4096 + 123);
    writeFileSync(initrd, bytes);
    const r = await session([SHELL, "--ramdisk", initrd], [[PROMPT, "poweroff\n"]]);
    assert.equal(r.status, 0, r.stderr);
    const m = /^module: start=0x([0-9a-f]+) len=(\d+) fnv=(0x[0-9a-f]{8})$/m.exec(r.stdout);
    assert.ok(m, r.stdout);
    assert.equal(Number.parseInt(m[1], 16) % 4096, 0, "page-aligned");
    assert.equal(Number(m[2]), bytes.length);
    assert.equal(m[3], fnv1a(bytes));
    // A ramdisk that cannot be read is named.
    const missing = await session([SHELL, "--ramdisk", join(dir, "nope.img")], []);
    assert.equal(missing.status, 2);
    assert.equal(missing.stdout, "");
    assert.match(missing.stderr, /^tsxen: cannot read ramdisk .*nope\.img: ENOENT/);
  });

  it("a configuration's ramdisk, root and extra make the module and the command line, as xm did", async () => {
    const dir = tempDir();
    const bytes = randomBytes(5000);
    writeFileSync(join(dir, "initrd.img"), bytes);
    const cfg = join(dir, "linux.cfg");
    writeFileSync(
      cfg,
      `kernel = "${SHELL}"\nramdisk = "initrd.img"\nmemory = 16\nroot = "/dev/sda1 ro"\nextra = "4 console=xencons"\non_reboot = "destroy"\n`,
    );
    const r = await session(
      [cfg],
      [
        [PROMPT, "cmdline\n"],
        [PROMPT, "reboot\n"],
      ],
    );
    assert.equal(r.status, 3, "on_reboot = destroy ends the run at a reboot");
    assert.match(r.stdout, /^cmdline="root=\/dev\/sda1 ro 4 console=xencons"$/m);
    assert.match(r.stdout, new RegExp(`^module: start=0x[0-9a-f]+ len=5000 fnv=${fnv1a(bytes)}$`, "m"));
  });
});
