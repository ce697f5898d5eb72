/**
 * Disk benchmark (issue 14): XenLinux 2.6.11 with its root on a disk image runs BusyBox dd on a
 * second image (sdb, read-write, served by blkback) — sequential and random 4 KiB reads and
 * writes — and then the host does the same on the same image file with Node's fs. Prints MB/s
 * and IOPS side by side. Not a timed test: it prints figures.
 *
 *   TSXEN_XENLINUX=vmlinux TSXEN_XENLINUX_USERLAND=dir TSXEN_XENLINUX_LTEST=ltest npm run bench:disk
 *
 * (docs/real-guests.md builds them; the root image is made on the fly with e2fsprogs.)
 *
 * The guest's figures are wall time on this machine, from typing the command to its end
 * marker: they include the emulated CPU running Linux's block layer and blkfront, dom0's
 * foreign mappings and blkback's fdatasync per batch of writes. Guest reads use O_DIRECT
 * (iflag=direct), so they reach the image, not Linux's page cache; the host's reads are served
 * by the host's page cache. The random loops run one dd process per operation: the same loop
 * with dd from /dev/zero to /dev/null measures that process cost, which the "net" column takes
 * away. The wall and CPU seconds of each guest pass tell how much of it the machine's load
 * took (this process's CPU time is what the emulation itself cost).
 */
import {
  closeSync,
  fdatasyncSync,
  fsyncSync,
  mkdtempSync,
  openSync,
  readSync,
  rmSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BlkifStats, blkbackOf } from "../src/tools/backends/blkback.js";
import { sessionDevices } from "../src/tools/backends/devices.js";
import { parseDiskSpec } from "../src/tools/config.js";
import { dom0Of } from "../src/tools/dom0.js";
import { makeRootImage, rootImageUnavailable } from "../test/helpers/rootfs.js";
import { LinuxRun, PROMPT, xenLinuxFiles } from "../test/helpers/xenlinux.js";

const BLOCK = 4096;
/** The bench image: 16 MiB, 4096 blocks; the sequential passes cover all of it. */
const BLOCKS = 4096;
/** Operations of each random pass (one dd each in the guest). */
const RANDOM_OPS = 200;

interface Figure {
  seconds: number;
  ops: number;
}

const mbps = (f: Figure): number => (f.ops * BLOCK) / f.seconds / 1e6;
const iops = (f: Figure): number => f.ops / f.seconds;

/** The host's passes on the image file: the same blocks, the same flushes as the guest's. */
function hostPasses(path: string): Record<string, Figure> {
  const buf = Buffer.alloc(BLOCK, 0xa5);
  let seed = 0x9e3779b9;
  const rnd = (): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % BLOCKS;
  };
  const time = (ops: number, body: (fd: number) => void, flags: string): Figure => {
    const fd = openSync(path, flags);
    const t0 = performance.now();
    try {
      body(fd);
    } finally {
      closeSync(fd);
    }
    return { seconds: (performance.now() - t0) / 1000, ops };
  };
  return {
    "seq write": time(
      BLOCKS,
      (fd) => {
        for (let i = 0; i < BLOCKS; i++) writeSync(fd, buf, 0, BLOCK, i * BLOCK);
        fsyncSync(fd);
      },
      "r+",
    ),
    "seq read": time(
      BLOCKS,
      (fd) => {
        for (let i = 0; i < BLOCKS; i++) readSync(fd, buf, 0, BLOCK, i * BLOCK);
      },
      "r",
    ),
    "rand read": time(
      RANDOM_OPS,
      (fd) => {
        for (let i = 0; i < RANDOM_OPS; i++) readSync(fd, buf, 0, BLOCK, rnd() * BLOCK);
      },
      "r",
    ),
    "rand write": time(
      RANDOM_OPS,
      (fd) => {
        for (let i = 0; i < RANDOM_OPS; i++) {
          writeSync(fd, buf, 0, BLOCK, rnd() * BLOCK);
          fdatasyncSync(fd);
        }
      },
      "r+",
    ),
  };
}

/** The guest's passes: a shell command each, ended by a marker line it prints. */
const loop = (body: string): string =>
  `i=0; while [ $i -lt ${RANDOM_OPS} ]; do ${body} 2>/dev/null; i=$((i+1)); done`;
const GUEST: [string, number, string][] = [
  ["seq write", BLOCKS, `dd if=/dev/zero of=/dev/sdb bs=${BLOCK} count=${BLOCKS} conv=fsync 2>/dev/null`],
  ["seq read", BLOCKS, `dd if=/dev/sdb of=/dev/null bs=${BLOCK} count=${BLOCKS} iflag=direct 2>/dev/null`],
  [
    "rand read",
    RANDOM_OPS,
    loop(`dd if=/dev/sdb of=/dev/null bs=${BLOCK} count=1 skip=$((RANDOM % ${BLOCKS})) iflag=direct`),
  ],
  [
    "rand write",
    RANDOM_OPS,
    loop(
      `dd if=/dev/zero of=/dev/sdb bs=${BLOCK} count=1 seek=$((RANDOM % ${BLOCKS})) oflag=direct conv=notrunc`,
    ),
  ],
  ["dd only", RANDOM_OPS, loop(`dd if=/dev/zero of=/dev/null bs=${BLOCK} count=1`)],
];

function main(): number {
  const files = xenLinuxFiles();
  const why = typeof files === "string" ? files : rootImageUnavailable();
  if (why || typeof files === "string") {
    process.stdout.write(`bench:disk: not run: ${why}\n`);
    return 0;
  }
  const dir = mkdtempSync(join(tmpdir(), "tsxen-diskbench-"));
  try {
    const root = join(dir, "root.img");
    const data = join(dir, "bench.img");
    makeRootImage(files.userland, root, 32);
    writeFileSync(data, Buffer.alloc(BLOCKS * BLOCK));
    const disks = [parseDiskSpec(`file:${root},sda1,w`), parseDiskSpec(`file:${data},sdb,w`)];
    const run = new LinuxRun(files, {
      initrd: null,
      cmdline: "root=/dev/sda1 ro",
      devices: (hv) => sessionDevices(hv, disks, [], () => {}),
    });
    const t0 = performance.now();
    let at = run.until(PROMPT, 0, 120);
    process.stdout.write(
      `XenLinux booted from sda1 in ${((performance.now() - t0) / 1000).toFixed(1)} s wall\n`,
    );
    const back = blkbackOf(dom0Of(run.hv));
    const stats = (): BlkifStats => {
      const s = back.status(run.session.domain.id, 0);
      if (s === undefined) throw new Error("the guest's block interface is gone");
      return s.stats;
    };
    const guest: Record<string, Figure & { cpuS: number; requests: number; syncs: number }> = {};
    for (const [k, [name, ops, cmd]] of GUEST.entries()) {
      const s0 = stats();
      const w0 = performance.now();
      const u0 = process.cpuUsage();
      run.type(`${cmd}; echo PASS${k}-$((${k}+1000))`);
      at = run.until(new RegExp(`^PASS${k}-${k + 1000}\\r?$`, "m"), at, 600);
      const s1 = stats();
      const u1 = process.cpuUsage(u0);
      guest[name] = {
        cpuS: (u1.user + u1.system) / 1e6,
        seconds: (performance.now() - w0) / 1000,
        ops,
        requests: s1.okay - s0.okay,
        syncs: s1.syncs - s0.syncs,
      };
      if (s1.errors !== s0.errors)
        throw new Error(`${name}: blkback answered ${s1.errors - s0.errors} errors`);
    }
    run.type("poweroff");
    run.session.runUntil(run.hv.nowNs() + 30e9);

    const host = hostPasses(data);
    const cost = guest["dd only"].seconds / RANDOM_OPS;
    const col = (s: string, w: number): string => s.padStart(w);
    process.stdout.write(
      `4 KiB blocks on a ${(BLOCKS * BLOCK) >> 20} MiB image; random passes ${RANDOM_OPS} ops; ` +
        `one dd process in the guest costs ${(cost * 1000).toFixed(1)} ms\n`,
    );
    process.stdout.write(
      `${"".padEnd(11)}${col("wall s", 8)}${col("CPU s", 7)}${col("guest MB/s", 11)}${col("IOPS", 8)}${col("net IOPS", 10)}${col("requests", 10)}${col("syncs", 7)}` +
        `${col("host MB/s", 11)}${col("IOPS", 9)}\n`,
    );
    for (const name of ["seq write", "seq read", "rand read", "rand write"]) {
      const g = guest[name];
      const h = host[name];
      const left = g.seconds - cost * g.ops;
      const net = !name.startsWith("rand") ? "" : left > 0 ? (g.ops / left).toFixed(0) : "-";
      process.stdout.write(
        `${name.padEnd(11)}${col(g.seconds.toFixed(1), 8)}${col(g.cpuS.toFixed(1), 7)}${col(mbps(g).toFixed(2), 11)}${col(iops(g).toFixed(0), 8)}${col(net, 10)}` +
          `${col(String(g.requests), 10)}${col(String(g.syncs), 7)}` +
          `${col(mbps(h).toFixed(1), 11)}${col(iops(h).toFixed(0), 9)}\n`,
      );
    }
    return 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

process.exitCode = main();
