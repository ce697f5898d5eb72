/**
 * `tsxen run --record / --replay` (src/tools/replay.ts, src/cli/run-debug.ts): the record holds
 * every input that is not a function of the machine, and a replay that would not be the same
 * run is refused before it starts: another disk image (by size and SHA-256, the file named),
 * other exit actions, configuration variables or time limit; a damaged end record is refused;
 * Ctrl-] typed at a terminal is logged and the replay ends where the recording did. (The typed
 * session's byte-for-byte replay is test/gdb.test.ts's.)
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { InputLog, SessionMachine } from "../src/tools/replay.js";
import type { GuestSession } from "../src/tools/session.js";
import { guestPath } from "./support/guests.js";

const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const TARGET = guestPath("dbg_target");
const dir = mkdtempSync(join(tmpdir(), "tsxen-record-"));

/** `tsxen run args` in dir, stdin closed, bounded to two minutes. */
function run(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, "run", ...args], {
    cwd: dir,
    encoding: "latin1",
    timeout: 120_000,
    stdio: ["ignore", "pipe", "pipe"],
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The run recorded to log replays as recorded. */
function replaysAsRecorded(log: string, ...args: string[]): void {
  const r = run(...args, "--replay", log);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /state hash [0-9a-f]{64} \(as recorded\)/);
}

describe("tsxen run --record: every input, checked at replay", () => {
  it("disk images go in by size and SHA-256: a replay with another image is refused, naming the file", () => {
    // The images the test frontend checks (test/blkif.test.ts): sector s, byte i = s*131 + i*7 + seed.
    const image = (sectors: number, seed: number): Buffer =>
      Buffer.from(
        Array.from({ length: sectors * 512 }, (_, k) => ((k >> 9) * 131 + (k & 511) * 7 + seed) & 0xff),
      );
    writeFileSync(join(dir, "root.img"), image(2048, 1));
    writeFileSync(join(dir, "data.img"), image(128, 2));
    copyFileSync(join(dir, "root.img"), join(dir, "root-before.img"));
    const disks = (root: string) => [
      "--memory",
      "4",
      "--disk",
      `file:${root},sda1,w`,
      "--disk",
      "file:data.img,sdb,r",
    ];
    const blk = guestPath("ev_blkfront");
    const rec = run(blk, ...disks("root.img"), "--record", "disk.rec");
    assert.equal(rec.status, 0, rec.stderr);
    assert.match(rec.stdout, /DONE passed=64 failed=0/);
    assert.match(rec.stderr, /recorded 0 inputs to disk\.rec/);
    const head = JSON.parse(readFileSync(join(dir, "disk.rec"), "utf8").split("\n")[0]) as {
      options: { disks: Array<{ dev: string; bytes: number; sha256: string }> };
    };
    assert.deepEqual(
      head.options.disks.map((d) => [d.dev, d.bytes]),
      [
        ["sda1", 2048 * 512],
        ["sdb", 128 * 512],
      ],
    );
    // The guest wrote root.img: it is not the image the run began with any more.
    const changed = run(blk, ...disks("root.img"), "--replay", "disk.rec");
    assert.equal(changed.status, 2);
    assert.match(
      changed.stderr,
      /disk image \/\S+\/root\.img \(sda1\) is not the one disk\.rec was recorded with: 1048576 bytes, SHA-256 [0-9a-f]{64}; recorded 1048576 bytes/,
    );
    assert.equal(changed.stdout, "", "refused before it ran");
    // A copy made before recording is the same image: the same run.
    replaysAsRecorded("disk.rec", blk, ...disks("root-before.img"));
    const fewer = run(blk, "--memory", "4", "--disk", "file:data.img,sdb,r", "--replay", "disk.rec");
    assert.equal(fewer.status, 2);
    assert.match(fewer.stderr, /disk\.rec was recorded with the disks \["sda1","sdb"\], not \["sdb"\]/);
  });

  it("exit actions, configuration variables and the time limit are part of the record", () => {
    const config = (crash: string) =>
      `kernel = "${TARGET}"\nmemory = 16\nname = "dbg-%s" % vmid\non_crash = "${crash}"\n`;
    writeFileSync(join(dir, "dbg.cfg"), config("preserve"));
    const rec = run("dbg.cfg", "vmid=1", "--record", "opts.rec");
    assert.equal(rec.status, 0, rec.stderr);
    replaysAsRecorded("opts.rec", "dbg.cfg", "vmid=1");
    const refused = (args: string[], why: RegExp): void => {
      const r = run(...args, "--replay", "opts.rec");
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, why);
    };
    refused(
      ["dbg.cfg", "vmid=2"],
      /opts\.rec was recorded with other options: name "dbg-1" \(now "dbg-2"\), vars \["vmid=1"\] \(now \["vmid=2"\]\)/,
    );
    refused(["dbg.cfg", "vmid=1", "--seconds", "5"], /other options: seconds null \(now 5\)$/m);
    refused(["dbg.cfg", "vmid=1", "--no-reboot"], /other options: reboot true \(now false\)$/m);
    writeFileSync(join(dir, "dbg.cfg"), config("restart"));
    refused(["dbg.cfg", "vmid=1"], /other options: on_crash "preserve" \(now "restart"\)$/m);
  });

  it("a damaged end record, or a line after it, is refused", () => {
    const rec = run(TARGET, "--record", "end.rec");
    assert.equal(rec.status, 0, rec.stderr);
    const lines = readFileSync(join(dir, "end.rec"), "utf8").trim().split("\n");
    const end = JSON.parse(lines[lines.length - 1]) as { end: Record<string, unknown> };
    const refused = (name: string, text: string[], why: RegExp): void => {
      writeFileSync(join(dir, name), `${text.join("\n")}\n`);
      const r = run(TARGET, "--replay", name);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, why);
    };
    for (const field of ["consoleBytes", "consoleSha256", "stateHash", "ns"]) {
      const { [field]: _, ...rest } = end.end;
      refused(
        "end-damaged.rec",
        [...lines.slice(0, -1), JSON.stringify({ end: rest })],
        /line \d+: a damaged end record/,
      );
    }
    refused(
      "end-hash.rec",
      [...lines.slice(0, -1), JSON.stringify({ end: { ...end.end, stateHash: "not a hash" } })],
      /a damaged end record/,
    );
    refused("end-after.rec", [...lines, lines[lines.length - 1]], /line \d+ comes after the end record/);
    replaysAsRecorded("end.rec", TARGET);
  });

  it("every field of a record is checked: a damaged disk entry or console input is refused, naming it", () => {
    const rec = run(TARGET, "--record", "fields.rec");
    assert.equal(rec.status, 0, rec.stderr);
    const lines = readFileSync(join(dir, "fields.rec"), "utf8").trim().split("\n");
    const head = JSON.parse(lines[0]) as { options: Record<string, unknown> };
    const refused = (text: string[], why: RegExp): void => {
      writeFileSync(join(dir, "fields-bad.rec"), `${text.join("\n")}\n`);
      const r = run(TARGET, "--replay", "fields-bad.rec");
      assert.deepEqual([r.status, r.stdout], [2, ""], r.stderr);
      assert.match(r.stderr, why);
    };
    const disk = { dev: "sda1", writable: true, bytes: 512, sha256: "0".repeat(64) };
    const withDisks = (disks: unknown): string[] => [
      JSON.stringify({ ...head, options: { ...head.options, disks } }),
      ...lines.slice(1),
    ];
    refused(
      withDisks([null]),
      /fields-bad\.rec: options\.disks\[0\] must be an object \{dev, writable, bytes, sha256\}/,
    );
    refused(withDisks("sda1"), /fields-bad\.rec: options\.disks must be a list of disks/);
    refused(
      withDisks([disk, { ...disk, bytes: -1 }]),
      /options\.disks\[1\]\.bytes must be a whole number of bytes/,
    );
    refused(withDisks([{ ...disk, writable: "w" }]), /options\.disks\[0\]\.writable must be true or false/);
    refused(withDisks([{ ...disk, dev: 3 }]), /options\.disks\[0\]\.dev must be a string/);
    refused(withDisks([{ ...disk, sha256: "x" }]), /options\.disks\[0\]\.sha256 must be a SHA-256/);
    // An input's console bytes are base64: a character outside it is refused, not dropped.
    const input = (console: string): string[] => [
      lines[0],
      JSON.stringify({ ns: 1, retired: 1, console }),
      ...lines.slice(1),
    ];
    refused(input("aGk*"), /fields-bad\.rec: line 2: the console input "aGk\*" is not base64/);
    refused(input("aGk"), /line 2: the console input "aGk" is not base64/);
    replaysAsRecorded("fields.rec", TARGET);
  });

  it("Ctrl-] at a terminal is logged with its stamp: the replay of a busy guest ends where the recording did", {
    skip: existsSync("/usr/bin/script") ? false : "script(1) is not installed (util-linux)",
  }, () => {
    // script(1) gives tsxen run a terminal: raw mode, where Ctrl-] is the escape.
    const cmd = `${JSON.stringify(process.execPath)} ${JSON.stringify(MAIN)} run ${JSON.stringify(TARGET)} --cmdline spin --seconds 30 --record esc.rec`;
    const rec = spawnSync(
      "/bin/sh",
      ["-c", `(sleep 2; printf 'ab\\035') | script -qfec '${cmd}' /dev/null`],
      {
        cwd: dir,
        encoding: "latin1",
        timeout: 120_000,
      },
    );
    assert.equal(rec.status, 1, rec.stdout + rec.stderr);
    assert.match(rec.stdout, /stopped at Ctrl-\]/);
    const events = readFileSync(join(dir, "esc.rec"), "utf8")
      .trim()
      .split("\n")
      .slice(1, -1)
      .map((l) => JSON.parse(l) as { ns: number; escape?: boolean; console?: string });
    assert.deepEqual(
      events.map((e) => e.escape === true || Buffer.from(e.console ?? "", "base64").toString()),
      ["ab", true],
    );
    const end = JSON.parse(readFileSync(join(dir, "esc.rec"), "utf8").trim().split("\n").at(-1) ?? "") as {
      end: { ns: number };
    };
    assert.ok(end.end.ns < 30e9, "ended by the escape, before the time limit");
    const r = run(TARGET, "--cmdline", "spin", "--seconds", "30", "--replay", "esc.rec");
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /state hash [0-9a-f]{64} \(as recorded\)\ntsxen: stopped at Ctrl-\]/);
  });

  it("every host-time wait is woken: the run loop's and the debugger's at once, neither losing the other's", async () => {
    // No machine is run: only the waits (a session that is never sliced).
    const m = new SessionMachine(
      () => ({}) as GuestSession,
      new InputLog({ tsxenRecord: 1, kernelSha256: "0".repeat(64), options: {} }),
    );
    const woken: string[] = [];
    const a = m.waitForInput().then((more) => woken.push(`a ${more}`));
    const b = m.waitForInput().then((more) => woken.push(`b ${more}`));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(woken, [], "nothing came yet");
    m.wakeUp();
    await Promise.race([Promise.all([a, b]), new Promise((resolve) => setTimeout(resolve, 5000))]);
    assert.deepEqual(woken.sort(), ["a true", "b true"]);
    m.inputClosed = true;
    assert.equal(await m.waitForInput(), false, "input closed: no wait");
  });
});
