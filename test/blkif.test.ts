/**
 * Virtual block devices end to end: the test frontend (guests/events/blkfront.c) negotiates
 * with the toolstack's controller (src/tools/backends/blkif_ctl.ts) and is served by dom0's
 * blkback from image files; every bad input it sends must be refused without touching the
 * images or the backend's ability to serve. The images are checked on the host afterwards.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { blkbackOf } from "../src/tools/backends/blkback.js";
import { blkdevNameToNumber, blkdevNumberToName } from "../src/tools/backends/vdev.js";
import { parseDiskSpec, parseDomainConfig } from "../src/tools/config.js";
import { DomainManager, type ManagedDomain, ToolstackError } from "../src/tools/domains.js";
import { Hypervisor } from "../src/xen/hypervisor.js";
import { startDaemon } from "./helpers/daemon.js";
import { guestPath } from "./support/guests.js";

/** Byte i of sector s of an image made with seed (the guest computes the same). */
function pattern(seed: number, sector: number, i: number): number {
  return (sector * 131 + i * 7 + seed) & 0xff;
}

function image(sectors: number, seed: number): Buffer {
  const b = Buffer.alloc(sectors * 512);
  for (let s = 0; s < sectors; s++) for (let i = 0; i < 512; i++) b[s * 512 + i] = pattern(seed, s, i);
  return b;
}

function sectorsOf(b: Buffer, first: number, n: number): Buffer {
  return b.subarray(first * 512, (first + n) * 512);
}

let dir = "";
let kernel: Uint8Array;

function machine(): { hv: Hypervisor; manager: DomainManager; out: () => string } {
  let text = "";
  let manager: DomainManager | undefined;
  const hv = new Hypervisor({
    memoryMiB: 64,
    onConsole: (d, b) => {
      text += Buffer.from(b).toString("latin1");
      manager?.consoleOutput(d, b);
    },
  });
  manager = new DomainManager(hv);
  return { hv, manager, out: () => text };
}

function create(manager: DomainManager, name: string, disks: string[], extra = ""): ManagedDomain {
  const cfg = parseDomainConfig(
    `${name}.cfg`,
    [
      `kernel = "blkfront"`,
      `name = "${name}"`,
      `memory = 4`,
      `extra = "${extra}"`,
      `on_poweroff = "preserve"`,
      `disk = [${disks.map((d) => `'${d}'`).join(", ")}]`,
    ].join("\n"),
  );
  const info = manager.create(cfg, { kernel });
  return manager.find(info.id);
}

/** Runs guest time until pred() holds (or the guest stops), at most limitMs of guest time. */
function runUntil(hv: Hypervisor, manager: DomainManager, pred: () => boolean, limitMs = 60_000): void {
  const end = hv.nowNs() + limitMs * 1e6;
  while (!pred() && hv.nowNs() < end) {
    const r = hv.run(Math.min(end, hv.nowNs() + 5e6));
    manager.handleStops();
    if (r.kind === "idle" || r.kind === "shutdown" || r.kind === "crashed") break;
  }
}

before(() => {
  kernel = readFileSync(guestPath("ev_blkfront"));
  dir = mkdtempSync(join(tmpdir(), "tsxen-blkif-"));
  writeFileSync(join(dir, "root.img"), image(2048, 1));
  writeFileSync(join(dir, "data.img"), image(128, 2));
  writeFileSync(join(dir, "extra.img"), image(64, 3));
});

after(() => rmSync(dir, { recursive: true, force: true }));

describe("blkif: device names and disk entries", () => {
  it("maps names to the 2005 device numbers and back", () => {
    const cases: Array<[string, number]> = [
      ["sda1", 0x801],
      ["sda", 0x800],
      ["sdb", 0x810],
      ["/dev/sdp15", 0x8ff],
      ["hda", 0x300],
      ["hdb", 0x340],
      ["hdb3", 0x343],
      ["hdc1", 0x1601],
      ["0x801", 0x801],
      ["0303", 0x303],
    ];
    for (const [name, n] of cases) assert.equal(blkdevNameToNumber(name), n, name);
    for (const bad of ["sdq", "sda16", "hdu", "xvda", "0", "disk"])
      assert.equal(blkdevNameToNumber(bad), null, bad);
    assert.equal(blkdevNumberToName(0x801), "sda1");
    assert.equal(blkdevNumberToName(0x343), "hdb3");
    assert.equal(blkdevNumberToName(0x1234), "0x1234");
  });

  it("parses disk entries and says what is wrong with bad ones", () => {
    assert.deepEqual(parseDiskSpec("file:/srv/root.img,sda1,w"), {
      path: "/srv/root.img",
      dev: "sda1",
      vdev: 0x801,
      writable: true,
      force: false,
    });
    assert.equal(parseDiskSpec("file:a.img, hda , r!").force, true);
    assert.throws(() => parseDiskSpec("phy:hda1,sda1,w"), /raw image files/);
    assert.throws(() => parseDiskSpec("file:/x,sda1"), /must be 'file:/);
    assert.throws(() => parseDiskSpec("file:/x,floppy,w"), /not a device name/);
    assert.throws(() => parseDiskSpec("file:/x,sda1,rw"), /mode must be r or w/);
    assert.throws(() => parseDiskSpec("file:,sda1,r"), /names no image/);
    assert.throws(
      () => parseDomainConfig("x.cfg", `kernel = "k"\ndisk = ['file:/a,sda1,w', 'file:/b,sda1,r']`),
      /x\.cfg:2: two disks are both sda1/,
    );
    assert.throws(
      () => parseDomainConfig("x.cfg", `kernel = "k"\ndisk = 'file:/a,sda1,w'`),
      /disk must be a list/,
    );
  });
});

describe("blkif: the test frontend against blkback", () => {
  it("negotiates, reads, writes, survives every bad request, hot-plugs and disconnects", () => {
    const { hv, manager, out } = machine();
    const root = join(dir, "root.img");
    const data = join(dir, "data.img");
    const before = { root: readFileSync(root), data: readFileSync(data) };
    const m = create(manager, "fe", [`file:${root},sda1,w`, `file:${data},sdb,r`], "hotplug");
    const domid = m.domain.id;
    const back = blkbackOf(manager.dom0);

    // Read-write images are not shared; read-only ones are.
    assert.throws(
      () => create(manager, "other", [`file:${root},sda1,w`]),
      (e: Error) => e instanceof ToolstackError && /in use read-write by domain \d+/.test(e.message),
    );
    assert.throws(() => create(manager, "other", [`file:${root},sda1,r`]), /in use read-write/);
    assert.throws(
      () => create(manager, "other", [`file:${data},sda1,w`]),
      /in use read-only .* cannot be attached read-write/,
    );
    const reader = create(manager, "reader", [`file:${data},sda1,r`]);
    manager.destroy(reader);
    assert.equal(manager.byName("other"), undefined, "a refused domain is not left behind");

    runUntil(hv, manager, () => out().includes("waiting for a disk to be attached"));
    assert.match(out(), /waiting for a disk to be attached/, out());
    assert.throws(() => manager.blockAttach(m, `file:${root}`, "sdc", "w"), /in use read-write/);
    assert.throws(() => manager.blockAttach(m, `file:${data}`, "sdb", "r"), /already has a disk sdb/);
    assert.throws(
      () => manager.blockAttach(m, `file:${join(dir, "none.img")}`, "sdc", "r"),
      /cannot open disk image .*ENOENT/,
    );
    const rows = manager.blockAttach(m, `file:${join(dir, "extra.img")}`, "sdc", "w");
    assert.deepEqual(
      rows.map((r) => [r.dev, r.mode, r.sectors, r.state]),
      [
        ["sda1", "w", 2048, "connected"],
        ["sdb", "r", 128, "connected"],
        ["sdc", "w", 64, "connected"],
      ],
    );
    runUntil(hv, manager, () => out().includes("waiting for a disk to be detached"));
    assert.throws(() => manager.blockDetach(m, "sdd"), /has no disk sdd; it has sda1, sdb, sdc/);
    assert.equal(manager.blockDetach(m, "0x820").length, 2);
    assert.equal(
      back.boundTo(`${statSync(join(dir, "extra.img")).dev}:${statSync(join(dir, "extra.img")).ino}`).length,
      0,
    );

    runUntil(hv, manager, () => /DONE passed=\d+ failed=\d+/.test(out()));
    const text = out();
    assert.deepEqual(
      text.split("\n").filter((l) => l.startsWith("FAIL")),
      [],
      text,
    );
    assert.match(text, /DONE passed=72 failed=0/, text);

    // What the backend counted: the guest's 23 refused requests and the 20 it served, with
    // one fdatasync per batch that wrote (the two-page write, the burst of eight).
    const st = back.status(domid, 0);
    assert.deepEqual(
      st && { connected: st.connected, okay: st.stats.okay, errors: st.stats.errors, syncs: st.stats.syncs },
      { connected: false, okay: 20, errors: 23, syncs: 2 },
    );
    assert.equal(st?.stats.sectorsWritten, 16 + 64);

    // Once destroyed its images are closed, and their contents are exactly what it wrote.
    manager.destroy(m);
    assert.equal(back.status(domid, 0), undefined);
    for (const p of [root, data]) {
      const st2 = statSync(p);
      assert.equal(back.boundTo(`${st2.dev}:${st2.ino}`).length, 0, `${p} still open`);
    }
    const after = { root: readFileSync(root), data: readFileSync(data) };
    assert.ok(after.data.equals(before.data), "the read-only image is unchanged");
    const want = Buffer.from(before.root);
    image(116, 0x33).copy(want, 100 * 512, 100 * 512, 116 * 512);
    for (let k = 0; k < 8; k++) {
      const s = 200 + 8 * k;
      image(s + 8, 0x44 + k).copy(want, s * 512, s * 512, (s + 8) * 512);
    }
    assert.ok(
      sectorsOf(after.root, 300, 16).equals(sectorsOf(before.root, 300, 16)),
      "refused writes wrote nothing",
    );
    assert.ok(after.root.equals(want), "the read-write image holds exactly the guest's writes");
    assert.ok(readFileSync(join(dir, "extra.img")).equals(image(64, 3)));
  });
});

describe("xm's device commands through tsxend (block-*, network-*)", () => {
  const CLI = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
  let stop: () => Promise<void> = async () => {};
  let env: NodeJS.ProcessEnv = {};
  // Refusals go straight to the API (a node process per xm run is slow on a busy machine);
  // the command-line side is covered by the successful runs and xm's own checks.
  let api: (path: string, body: unknown) => Promise<{ status: number; body: { error?: string } }> =
    async () => ({
      status: 0,
      body: {},
    });
  async function refused(path: string, body: unknown, msg: RegExp): Promise<void> {
    const r = await api(path, body);
    assert.ok(r.status >= 400, `${path} ${JSON.stringify(body)} was accepted`);
    assert.match(r.body.error ?? "", msg);
  }

  function xm(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((done) => {
      execFile(
        process.execPath,
        [CLI, "xm", ...args],
        { cwd: dir, env, timeout: 30_000 },
        (err, stdout, stderr) =>
          done({ code: err === null ? 0 : typeof err.code === "number" ? err.code : 1, stdout, stderr }),
      );
    });
  }

  before(async () => {
    // The helper's answer has a token and a state directory once tsxend has them.
    const d = (await startDaemon()) as {
      daemon: { close(): Promise<void> };
      port: number;
      token?: string;
      stateDir?: string;
    };
    stop = () => d.daemon.close();
    api = async (path, body) => {
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (d.token !== undefined) headers.authorization = `Bearer ${d.token}`;
      const r = await fetch(`http://127.0.0.1:${d.port}/api/v1${path}`, {
        method: "POST",
        headers,
        body: JSON.stringify(body),
      });
      return { status: r.status, body: (await r.json()) as { error?: string } };
    };
    env = { ...process.env, TSXEN_DAEMON: `127.0.0.1:${d.port}` };
    if (d.token !== undefined) env.TSXEN_TOKEN = d.token;
    if (d.stateDir !== undefined) env.TSXEN_STATE_DIR = d.stateDir;
  });
  after(() => stop());

  it("attaches, lists and detaches disks of a running domain, with clear errors", async () => {
    writeFileSync(join(dir, "xm-root.img"), image(256, 4));
    writeFileSync(join(dir, "xm-extra.img"), image(64, 5));
    writeFileSync(
      join(dir, "xm.cfg"),
      `kernel = "${guestPath("ev_counter")}"\nname = "disky"\nmemory = 4\ndisk = ['file:xm-root.img,sda1,w']\n`,
    );
    const created = await xm("create", "xm.cfg");
    assert.equal(created.code, 0, created.stderr);
    assert.doesNotMatch(created.stderr, /disk/);

    let r = await xm("block-list", "disky");
    assert.equal(r.code, 0, r.stderr);
    const rows = (out: string): string[][] =>
      out
        .trim()
        .split("\n")
        .slice(1)
        .map((l) => l.trim().split(/\s+/));
    assert.match(r.stdout, /^Dev\s+Vdev\s+Mode\s+Size\(MiB\)\s+State\s+Reqs\s+Errs\s+Image$/m);
    assert.deepEqual(rows(r.stdout), [
      ["sda1", "0x801", "w", "0.1", "disconnected", "0", "0", join(dir, "xm-root.img")],
    ]);

    r = await xm("block-attach", "disky", "file:xm-extra.img", "hdb", "r");
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      rows(r.stdout).map((x) => [x[0], x[1], x[2], x[7]]),
      [
        ["hdb", "0x340", "r", join(dir, "xm-extra.img")],
        ["sda1", "0x801", "w", join(dir, "xm-root.img")],
      ],
    );
    const json = JSON.parse((await xm("block-list", "disky", "--json")).stdout) as Array<{
      dev: string;
      sectors: number;
    }>;
    assert.deepEqual(
      json.map((x) => [x.dev, x.sectors]),
      [
        ["hdb", 64],
        ["sda1", 256],
      ],
    );

    const e = await xm("block-attach", "disky", "xm-extra.img", "hdc", "r");
    assert.equal(e.code, 1);
    assert.match(e.stderr, /^xm: the image must be given as file:/);
    const extra = `file:${join(dir, "xm-extra.img")}`;
    await refused(
      "/domains/disky/block-attach",
      { uname: extra, dev: "hdc", mode: "rw" },
      /mode must be r or w/,
    );
    await refused(
      "/domains/disky/block-attach",
      { uname: extra, dev: "floppy", mode: "r" },
      /not a device name/,
    );
    await refused(
      "/domains/disky/block-attach",
      { uname: "file:rel.img", dev: "hdc", mode: "r" },
      /must be absolute/,
    );
    await refused(
      "/domains/disky/block-attach",
      { uname: `file:${join(dir, "nothere.img")}`, dev: "hdc", mode: "r" },
      /cannot open disk image .*ENOENT/,
    );
    await refused(
      "/domains/disky/block-attach",
      { uname: `file:${join(dir, "xm-root.img")}`, dev: "sdb", mode: "r" },
      /in use read-write by domain/,
    );
    await refused(
      "/domains/nobody/block-attach",
      { uname: extra, dev: "hdc", mode: "r" },
      /no domain "nobody"/,
    );
    await refused("/domains/disky/block-detach", { dev: "sdz" }, /has no disk sdz; it has hdb, sda1/);

    r = await xm("block-detach", "disky", "hdb");
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      rows((await xm("block-list", "disky")).stdout).map((x) => x[0]),
      ["sda1"],
    );

    // Network interfaces: the configuration gave none; attach two, detach one by MAC.
    r = await xm("network-list", "disky");
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(rows(r.stdout), []);
    r = await xm("network-attach", "disky", "mac=00:16:3e:0a:0b:0c", "bridge=br7");
    assert.equal(r.code, 0, r.stderr);
    r = await xm("network-attach", "disky");
    assert.equal(r.code, 0, r.stderr);
    const vifs = rows(r.stdout);
    assert.deepEqual(
      vifs[0].map((x, i) => (i === 1 ? x.replace(/^vif\d+/, "vifN") : x)),
      ["0", "vifN.0", "00:16:3e:0a:0b:0c", "br7", "disconnected", "0", "0", "0", "0"],
    );
    assert.match(vifs[1][2], /^00:16:3e(:[0-9a-f]{2}){3}$/);
    assert.equal(vifs[1][3], "xenbr0");
    await refused(
      "/domains/disky/network-attach",
      { spec: "mac=00:16:3e:0a:0b:0c" },
      /already has a vif with MAC/,
    );
    await refused("/domains/disky/network-attach", { spec: "mac=zz" }, /mac must look like/);
    await refused(
      "/domains/disky/network-detach",
      { vif: "7" },
      /has no vif 7; it has 0 \(00:16:3e:0a:0b:0c\), 1 /,
    );
    assert.equal((await xm("network-detach", "disky", "00:16:3E:0A:0B:0C")).code, 0);
    const vifJson = JSON.parse((await xm("network-list", "disky", "--json")).stdout) as Array<{
      handle: number;
    }>;
    assert.deepEqual(
      vifJson.map((v) => v.handle),
      [1],
    );
    assert.equal((await xm("destroy", "disky")).code, 0);
  });
});

describe("blkif: tsxen run --disk", () => {
  const CLI = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
  function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((done) => {
      execFile(
        process.execPath,
        [CLI, "run", ...args],
        { cwd: dir, timeout: 120_000 },
        (err, stdout, stderr) =>
          done({ code: err === null ? 0 : typeof err.code === "number" ? err.code : 1, stdout, stderr }),
      );
    });
  }

  it("serves disks given on the command line and in a configuration file", async () => {
    writeFileSync(join(dir, "run-root.img"), image(2048, 1));
    writeFileSync(join(dir, "run-data.img"), image(128, 2));
    let r = await run(
      guestPath("ev_blkfront"),
      "--memory",
      "4",
      "--disk",
      "file:run-root.img,sda1,w",
      "--disk",
      "file:run-data.img,sdb,r",
    );
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /DONE passed=64 failed=0/, r.stdout);
    assert.ok(
      sectorsOf(readFileSync(join(dir, "run-root.img")), 100, 16).equals(
        sectorsOf(image(116, 0x33), 100, 16),
      ),
    );

    // The same from a configuration file, its images relative to the file.
    writeFileSync(
      join(dir, "run.cfg"),
      `kernel = "${guestPath("ev_blkfront")}"\nmemory = 4\ndisk = ['file:run-root.img,sda1,w', 'file:run-data.img,sdb,r']\n`,
    );
    r = await run(join(dir, "run.cfg"), "--seconds", "60");
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /DONE passed=64 failed=0/, r.stdout);

    r = await run(guestPath("ev_blkfront"), "--disk", "file:run-root.img,sda1");
    assert.equal(r.code, 2);
    assert.match(r.stderr, /must be 'file:\/path\/image,DEVICE,MODE'/);
    r = await run(guestPath("ev_blkfront"), "--disk", "file:missing.img,sda1,w");
    assert.equal(r.code, 2);
    assert.match(r.stderr, /cannot open disk image .*missing\.img: ENOENT/);
  });
});
