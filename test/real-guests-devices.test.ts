/**
 * XenLinux 2.6.11's own frontends (blkfront, netfront) against tsxen's dom0 backends, gated as
 * test/real-guests.test.ts is (TSXEN_XENLINUX, _USERLAND, _LTEST; docs/real-guests.md), and on
 * e2fsprogs for the root image. A root filesystem on a disk image that keeps a file across two
 * boots, a read-only disk Linux cannot change, an image one domain has read-write refused to
 * another, and two guests on one bridge under tsxend that ping each other and talk HTTP.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { sessionDevices } from "../src/tools/backends/devices.js";
import { parseDiskSpec, parseDomainConfig } from "../src/tools/config.js";
import { startDaemon } from "./helpers/daemon.js";
import { DomainShell, until } from "./helpers/domain-shell.js";
import { makeRootImage, readImageFile, rootImageUnavailable } from "./helpers/rootfs.js";
import { suiteOrSkip } from "./helpers/suite.js";
import { LinuxRun, PROMPT, xenLinuxFiles, xenLinuxInitrd } from "./helpers/xenlinux.js";

const files = xenLinuxFiles();
const skip = typeof files === "string" ? files : rootImageUnavailable();

let dir = "";
before(() => {
  dir = mkdtempSync(join(tmpdir(), "tsxen-linuxdev-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const md5 = (b: Uint8Array): string => createHash("md5").update(b).digest("hex");

/** A line the guest prints by itself: the typed command holds $((...)), so its echo does not match. */
const answer = (re: string): RegExp => new RegExp(`^${re}\\r?$`, "m");

suiteOrSkip("XenLinux 2.6.11 on virtual disks (blkfront against blkback)", skip, () => {
  let root = "";
  let data = "";
  let dataBytes = Buffer.alloc(0);

  /** Linux with its root on sda1 (root.img, read-write) and data.img as sdb, read-only. */
  function boot(): LinuxRun {
    if (typeof files === "string") throw new Error(files);
    const disks = [parseDiskSpec(`file:${root},sda1,w`), parseDiskSpec(`file:${data},sdb,r`)];
    return new LinuxRun(files, {
      initrd: null,
      cmdline: "root=/dev/sda1 ro",
      devices: (hv) => sessionDevices(hv, disks, [], () => {}),
    });
  }

  /** Types cmd and runs until the guest prints the line re (returns the console from there). */
  function ask(run: LinuxRun, cmd: string, re: string, seconds = 60): string {
    const from = run.console.length;
    run.type(cmd);
    const end = run.until(answer(re), from, seconds);
    return run.console.slice(from, end);
  }

  /** `poweroff` at the prompt; the session must end with the domain's poweroff. */
  function powerOff(run: LinuxRun): void {
    run.type("poweroff");
    const end = run.session.runUntil(run.hv.nowNs() + 30e9);
    assert.equal(end?.kind, "shutdown", run.console.slice(-2000));
    assert.equal(end?.kind === "shutdown" && end.reason, 0 /* poweroff */);
  }

  before(() => {
    if (typeof files === "string") return;
    root = join(dir, "root.img");
    data = join(dir, "data.img");
    makeRootImage(files.userland, root, 32);
    dataBytes = Buffer.alloc(1 << 20);
    for (let i = 0; i < dataBytes.length; i++) dataBytes[i] = (i * 7 + (i >> 12)) & 0xff;
    writeFileSync(data, dataBytes);
  });

  it("boots with root=/dev/sda1, writes a file and syncs; the image holds it after poweroff", () => {
    const run = boot();
    run.until(PROMPT, 0, 90);
    assert.match(run.console, /VFS: Mounted root \(ext2 filesystem\) readonly\./);
    // /init remounted the root read-write.
    ask(run, "grep ' / ' /proc/mounts | grep -q rw && echo RW-$((1+1))", "RW-2");
    ask(run, "echo kept-$((6*7)) > /root/kept.txt; sync; echo SYNCED-$((1+1))", "SYNCED-2");
    // The write reached the image file once sync returned: the host reads it there.
    assert.equal(readImageFile(root, "/root/kept.txt"), "kept-42\n");
    powerOff(run);
  });

  it("boots again from the same image and finds the file", () => {
    const run = boot();
    run.until(PROMPT, 0, 90);
    ask(run, "cat /root/kept.txt; echo CAT-$((1+1))", "CAT-2");
    assert.match(run.console, /^kept-42\r?$/m);
    powerOff(run);
  });

  it("a read-only disk: Linux reads the image's bytes, its write fails and the image is unchanged", () => {
    const run = boot();
    run.until(PROMPT, 0, 90);
    const sum = ask(run, "dd if=/dev/sdb bs=4096 count=16 2>/dev/null | md5sum; echo SUM-$((1+1))", "SUM-2");
    assert.match(sum, new RegExp(`^${md5(dataBytes.subarray(0, 65536))}  -\\r?$`, "m"), sum);
    // blkfront marks the disk read-only (the probe's VDISK_FLAG_RO), so Linux refuses the write.
    const ro = ask(run, "blockdev --getro /dev/sdb; blockdev --getro /dev/sda1; echo RO-$((1+1))", "RO-2");
    assert.match(ro, /^1\r?\n0\r?\nRO-2\r?$/m, ro);
    const wr = ask(
      run,
      "dd if=/dev/zero of=/dev/sdb bs=4096 count=4 conv=fsync; echo WR-$((0+1))-$?",
      "WR-1-\\d+",
    );
    assert.match(wr, /^dd: error writing '\/dev\/sdb': Operation not permitted\r?$/m, wr);
    assert.match(wr, /^WR-1-1\r?$/m, wr);
    powerOff(run);
    assert.ok(readFileSync(data).equals(dataBytes), "the read-only image changed");
  });
});

suiteOrSkip("XenLinux 2.6.11 on one bridge under tsxend (netfront against netback)", skip, () => {
  type D = Awaited<ReturnType<typeof startDaemon>>;
  let d: D;
  const MACS = ["00:16:3e:00:00:01", "00:16:3e:00:00:02"];
  const NAMES = ["net1", "net2"];

  const shell = (name: string): DomainShell => new DomainShell(d.daemon.manager, name);
  function config(name: string, extra: string): ReturnType<typeof parseDomainConfig> {
    return parseDomainConfig(
      join(dir, `${name}.cfg`),
      [`kernel = "vmlinux"`, `memory = 64`, `name = "${name}"`, extra].join("\n"),
    );
  }

  before(async () => {
    if (typeof files === "string") return;
    const kernel = readFileSync(files.kernel);
    const ramdisk = xenLinuxInitrd(files);
    writeFileSync(join(dir, "shared.img"), Buffer.alloc(1 << 20));
    d = await startDaemon({ machineMemoryMiB: 256, pacing: "fast" });
    NAMES.forEach((n, i) => {
      const disk = i === 0 ? `disk = ['file:${join(dir, "shared.img")},sdb,w']` : "";
      d.daemon.manager.create(config(n, `vif = ['mac=${MACS[i]}, bridge=xenbr0']\n${disk}`), {
        kernel,
        ramdisk,
      });
    });
  });
  after(async () => {
    await d?.daemon.close();
  });

  it("refuses a second domain the image the first has read-write", () => {
    if (typeof files === "string") return;
    const kernel = readFileSync(files.kernel);
    assert.throws(
      () =>
        d.daemon.manager.create(config("net3", `disk = ['file:${join(dir, "shared.img")},sda1,w']`), {
          kernel,
        }),
      /in use read-write by domain \d+/,
    );
    assert.equal(d.daemon.manager.byName("net3"), undefined);
  });

  it("two guests ping each other over xenbr0", async () => {
    await until("both prompts", () => NAMES.every((n) => shell(n).console.includes(PROMPT)), 600_000);
    for (const [i, n] of NAMES.entries())
      await shell(n).ask(
        `ifconfig eth0 10.0.0.${i + 1} netmask 255.255.255.0 up; echo UP-$((${i}+1))`,
        `UP-${i + 1}`,
      );
    const p1 = await shell("net1").ask("ping -c 3 -W 5 10.0.0.2; echo PING-$((1+1))", "PING-2");
    assert.match(p1, /3 packets transmitted, 3 packets received, 0% packet loss/, p1);
    const p2 = await shell("net2").ask("ping -c 3 -W 5 10.0.0.1; echo PING-$((1+1))", "PING-2");
    assert.match(p2, /3 packets transmitted, 3 packets received, 0% packet loss/, p2);
    const rows = d.daemon.manager.networkList(d.daemon.manager.find("net1"));
    assert.equal(rows.length, 1);
    assert.deepEqual([rows[0].mac, rows[0].bridge, rows[0].state], [MACS[0], "xenbr0", "connected"]);
  });

  it("one fetches a page over HTTP from httpd on the other", async () => {
    await shell("net2").ask(
      "mkdir -p /tmp/www && echo page-$((6*7)) > /tmp/www/index.html && httpd -p 80 -h /tmp/www; echo HTTPD-$((1+1))",
      "HTTPD-2",
    );
    const got = await shell("net1").ask(
      "wget -q -T 10 -O - http://10.0.0.2/index.html; echo WGET-$((1+1))-$?",
      "WGET-2-\\d+",
    );
    assert.match(got, /^page-42\r?$/m, got);
    assert.match(got, /^WGET-2-0\r?$/m, got);
  });
});
