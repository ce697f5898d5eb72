/**
 * Network benchmark (issue 14): two XenLinux 2.6.11 guests under an in-process tsxend, joined
 * by the bridge xenbr1, send a fixed number of bytes over TCP with BusyBox nc (guest to
 * guest); the first guest's second vif is on xenbr0, whose uplink is passt, and sends the same
 * to a TCP server this program runs on the host's loopback, reached as the gateway 10.0.2.2
 * (guest to host). Prints bytes, wall seconds and MB/s. Not a timed test: it prints figures.
 * Traffic goes only to the other guest and to this machine.
 *
 *   TSXEN_XENLINUX=vmlinux TSXEN_XENLINUX_USERLAND=dir TSXEN_XENLINUX_LTEST=ltest npm run bench:net
 *
 * (docs/real-guests.md builds them; passt is Debian's package, TSXEN_PASST names another
 * binary.) Without passt the guest-to-host figure is skipped, saying so.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { VifStats } from "../src/tools/backends/netback.js";
import { parseUplink, UPLINK_NET } from "../src/tools/backends/passt.js";
import { parseDomainConfig } from "../src/tools/config.js";
import { startDaemon } from "../test/helpers/daemon.js";
import { PROMPT, xenLinuxFiles, xenLinuxInitrd } from "../test/helpers/xenlinux.js";

/** Bytes each transfer sends: 4 MiB, in 4 KiB blocks from /dev/zero. */
const BLOCKS = 1024;
const BYTES = BLOCKS * 4096;
/** Wall-clock bounds (ms): boot, one command, one transfer. */
const BOOT_MS = 600_000;
const STEP_MS = 120_000;
const TRANSFER_MS = 600_000;

const answer = (re: string): RegExp => new RegExp(`^${re}\\r?$`, "m");

function passtMissing(): string | false {
  const bin = process.env.TSXEN_PASST ?? "passt";
  const r = spawnSync(bin, ["--version"], { encoding: "latin1" });
  return r.error !== undefined ? `${bin} not found (Debian package passt)` : false;
}

/** A loopback TCP server that counts what one connection sends; resolves at its end. */
async function sink(): Promise<{
  port: number;
  done: Promise<{ bytes: number; at: number }>;
  close(): void;
}> {
  const server = createServer();
  const done = new Promise<{ bytes: number; at: number }>((resolve, reject) => {
    server.once("connection", (s) => {
      let bytes = 0;
      s.on("data", (b) => void (bytes += b.length));
      s.on("end", () => {
        resolve({ bytes, at: performance.now() });
        s.end();
      });
      s.on("error", reject);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const addr = server.address();
  if (addr === null || typeof addr === "string") throw new Error("no port");
  return { port: addr.port, done, close: () => server.close() };
}

async function main(): Promise<number> {
  const files = xenLinuxFiles();
  if (typeof files === "string") {
    process.stdout.write(`bench:net: not run: ${files}\n`);
    return 0;
  }
  const noPasst = passtMissing();
  const dir = mkdtempSync(join(tmpdir(), "tsxen-netbench-"));
  const d = await startDaemon({
    machineMemoryMiB: 256,
    pacing: "realtime",
    uplink: noPasst ? undefined : parseUplink("xenbr0"),
  });
  const m = d.daemon.manager;
  try {
    const kernel = readFileSync(files.kernel);
    const ramdisk = xenLinuxInitrd(files);
    const vifs: Record<string, string[]> = {
      net1: ["mac=00:16:3e:00:01:01, bridge=xenbr1", "mac=00:16:3e:00:01:02, bridge=xenbr0"],
      net2: ["mac=00:16:3e:00:02:01, bridge=xenbr1"],
    };
    for (const [name, v] of Object.entries(vifs)) {
      const text = [
        `kernel = "vmlinux"`,
        "memory = 64",
        `name = "${name}"`,
        `vif = [${v.map((x) => `'${x}'`).join(", ")}]`,
      ].join("\n");
      m.create(parseDomainConfig(join(dir, `${name}.cfg`), text), { kernel, ramdisk });
    }
    const consoleOf = (name: string): string =>
      Buffer.from(m.consoleHistory(m.find(name))).toString("latin1");
    const until = async (what: string, check: () => boolean, ms: number): Promise<void> => {
      const end = Date.now() + ms;
      while (!check()) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const type = (name: string, line: string): void => m.consoleInput(m.find(name), Buffer.from(`${line}\n`));
    /** Types cmd; resolves with the console from there once the guest printed the line re. */
    const ask = async (name: string, cmd: string, re: string, ms = STEP_MS): Promise<string> => {
      const from = consoleOf(name).length;
      type(name, cmd);
      await until(`${re} on ${name}`, () => answer(re).test(consoleOf(name).slice(from)), ms);
      return consoleOf(name).slice(from);
    };

    const t0 = performance.now();
    await until("both prompts", () => ["net1", "net2"].every((n) => consoleOf(n).includes(PROMPT)), BOOT_MS);
    process.stdout.write(
      `two XenLinux guests at their prompts in ${((performance.now() - t0) / 1000).toFixed(1)} s wall\n`,
    );
    await ask("net1", "ifconfig eth0 10.0.0.1 netmask 255.255.255.0 up; echo UP-$((1+1))", "UP-2");
    await ask("net2", "ifconfig eth0 10.0.0.2 netmask 255.255.255.0 up; echo UP-$((1+1))", "UP-2");

    /** Bytes over wall time, and over this process's CPU time (steadier on a shared machine). */
    const rate = (what: string, bytes: number, ms: number, cpu: NodeJS.CpuUsage): void => {
      const cpuS = (cpu.user + cpu.system) / 1e6;
      process.stdout.write(
        `${what.padEnd(14)} ${String(bytes).padStart(9)} bytes in ${(ms / 1000).toFixed(2).padStart(7)} s wall: ` +
          `${(bytes / ms / 1e3).toFixed(3)} MB/s; ${cpuS.toFixed(2)} s CPU: ${(bytes / cpuS / 1e6).toFixed(3)} MB/CPU-s\n`,
      );
    };
    /** A vif's counters (xm network-list's), and what moved since `from`. */
    const vif = (name: string, handle: number): VifStats => ({ ...m.networkList(m.find(name))[handle] });
    const moved = (name: string, handle: number, from: VifStats): string => {
      const now = vif(name, handle);
      return (
        `${name} vif${handle}: sent ${now.txPackets - from.txPackets} frames, received ` +
        `${now.rxPackets - from.rxPackets}, dropped ${now.rxDropped - from.rxDropped} (no buffer posted)`
      );
    };
    const send = (to: string, port: number): string =>
      `dd if=/dev/zero bs=4096 count=${BLOCKS} 2>/dev/null | nc ${to} ${port}; echo TX-$((1+1))-$?`;

    // Guest to guest: net2 listens and counts, net1 sends; from net1's command to net2's count.
    const from2 = consoleOf("net2").length;
    await ask(
      "net2",
      "(nc -l -p 5001 </dev/null | wc -c; echo RX-$((1+1))) & " +
        "i=0; until netstat -ltn | grep -q ':5001 ' || [ $i -ge 100 ]; do sleep 0.1; i=$((i+1)); done; " +
        "netstat -ltn | grep -q ':5001 '; echo LISTEN-$((1+1))-$?",
      "LISTEN-2-0",
    );
    const c1 = vif("net1", 0);
    const c2 = vif("net2", 0);
    const g0 = performance.now();
    const u0 = process.cpuUsage();
    type("net1", send("10.0.0.2", 5001));
    await until(
      "net2's count",
      () => /(\d+)\r?\nRX-2\r?$/m.test(consoleOf("net2").slice(from2)),
      TRANSFER_MS,
    );
    const g1 = performance.now();
    const u1 = process.cpuUsage(u0);
    const got = Number(/(\d+)\r?\nRX-2\r?$/m.exec(consoleOf("net2").slice(from2))?.[1]);
    if (got !== BYTES) throw new Error(`net2 received ${got} bytes of ${BYTES}`);
    rate("guest to guest", got, g1 - g0, u1);
    process.stdout.write(`  ${moved("net1", 0, c1)}\n  ${moved("net2", 0, c2)}\n`);
    await until("net1's sender", () => answer("TX-2-\\d+").test(consoleOf("net1")), STEP_MS);

    if (noPasst) {
      process.stdout.write(`guest to host: not run: ${noPasst}\n`);
      return 0;
    }
    // Guest to host: net1's eth1 takes passt's address by DHCP, the host counts.
    const dhcp = await ask(
      "net1",
      "udhcpc -i eth1 -n -q -t 5 -T 3 2>&1; echo DHCP-$((1+1))-$?",
      "DHCP-2-\\d+",
      STEP_MS,
    );
    if (!answer("DHCP-2-0").test(dhcp)) throw new Error(`udhcpc on eth1 failed:\n${dhcp}`);
    const server = await sink();
    try {
      const c = vif("net1", 1);
      const h0 = performance.now();
      const v0 = process.cpuUsage();
      const tx = ask("net1", send(UPLINK_NET.gateway, server.port), "TX-2-\\d+", TRANSFER_MS);
      let timer: NodeJS.Timeout | undefined;
      const end = await Promise.race([
        server.done,
        new Promise<never>((_r, reject) => {
          timer = setTimeout(() => reject(new Error("guest to host: no end within the bound")), TRANSFER_MS);
        }),
      ]).finally(() => clearTimeout(timer));
      const v1 = process.cpuUsage(v0);
      await tx;
      if (end.bytes !== BYTES) throw new Error(`the host received ${end.bytes} bytes of ${BYTES}`);
      rate("guest to host", end.bytes, end.at - h0, v1);
      process.stdout.write(`  ${moved("net1", 1, c)}\n`);
    } finally {
      server.close();
    }
    return 0;
  } catch (e) {
    // What the guests were doing: the tails of their consoles.
    for (const n of ["net1", "net2"]) {
      const c = m.byName(n);
      const text =
        c === undefined ? "(gone)" : Buffer.from(m.consoleHistory(c)).toString("latin1").slice(-1500);
      process.stderr.write(`--- ${n}'s console:\n${text}\n`);
    }
    throw e;
  } finally {
    await d.daemon.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  (code) => void (process.exitCode = code),
  (e) => {
    process.stderr.write(`bench:net: ${(e as Error).message}\n`);
    process.exitCode = 1;
  },
);
