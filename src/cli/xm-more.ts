/**
 * xm's commands for looking at a running tsxend: log (tsxend's log, as xm log showed
 * xend.log), top (xentop's per-domain CPU and memory, live or in batch), uptime, and sysrq
 * (a magic SysRq key through the guest's control interface).
 */
import { resolve } from "node:path";
import type { Command } from "commander";
import type { DomainConfig } from "../tools/config.js";
import { type Connection, request, XmError } from "./xm-client.js";

/** What these commands read of a domain in GET /domains. */
interface Row {
  id: number;
  name: string;
  memKiB: number;
  maxMemKiB: number;
  state: string;
  cpuTimeNs: number;
  startedMs?: number;
  abi?: string;
}

interface Sample {
  at: number;
  rows: Row[];
  info: Record<string, unknown>;
}

async function sample(c: Connection): Promise<Sample> {
  const [d, info] = await Promise.all([
    request<{ domains: Row[] }>(c, "GET", "/domains"),
    request<Record<string, unknown>>(c, "GET", "/info"),
  ]);
  return { at: performance.now(), rows: d.domains, info };
}

/** xm uptime's "N days, H:MM:SS". */
export function formatUptime(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const days = Math.floor(s / 86400);
  const hms = `${Math.floor((s % 86400) / 3600)}:${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
  return days === 0 ? hms : `${days} day${days === 1 ? "" : "s"}, ${hms}`;
}

const STATES: [string, string][] = [
  ["r", "running"],
  ["b", "blocked"],
  ["p", "paused"],
  ["s", "shutdown"],
  ["c", "crashed"],
  ["d", "dying"],
];

/**
 * One xentop screen: a summary, then a row per domain with its CPU use over the interval
 * since `before` (CPU time gained / wall time passed) and its memory as a share of the
 * machine's. Every line fits 80 columns.
 */
export function formatTop(before: Sample, now: Sample, clock: Date): string {
  const wallNs = (now.at - before.at) * 1e6;
  const totalKiB = Number(now.info.total_memory) * 1024;
  const freeKiB = Number(now.info.free_memory) * 1024;
  const counts = STATES.map(([l, word]) => `${now.rows.filter((r) => r.state.includes(l)).length} ${word}`);
  const lines = [
    `tsxen top - ${clock.toTimeString().slice(0, 8)}   Xen ${now.info.xen_version}`,
    `${now.rows.length} domains: ${counts.join(", ")}`,
    `Mem: ${totalKiB}k total, ${totalKiB - freeKiB}k used, ${freeKiB}k free    CPUs: ${now.info.nr_cpus} @ ${now.info.cpu_mhz}MHz`,
    `${"NAME".padStart(16)} ${"ID".padStart(4)} ${"STATE".padStart(6)} ${"CPU(sec)".padStart(9)} ${"CPU(%)".padStart(6)} ${"MEM(k)".padStart(8)} ${"MEM(%)".padStart(6)} ${"MAXMEM(k)".padStart(9)} ABI`,
  ];
  for (const r of now.rows) {
    const old = before.rows.find((o) => o.id === r.id && o.name === r.name);
    const pct = old === undefined || wallNs <= 0 ? 0 : ((r.cpuTimeNs - old.cpuTimeNs) * 100) / wallNs;
    // xentop's state column: the letters of Xen's flags, '-' for the others.
    const state = STATES.map(([l]) => (r.state.includes(l) ? l : "-")).join("");
    lines.push(
      `${r.name.slice(0, 16).padStart(16)} ${String(r.id).padStart(4)} ${state.padStart(6)} ${String(Math.floor(r.cpuTimeNs / 1e9)).padStart(9)} ${Math.max(0, pct).toFixed(1).padStart(6)} ${String(r.memKiB).padStart(8)} ${((r.memKiB * 100) / totalKiB).toFixed(1).padStart(6)} ${String(r.maxMemKiB).padStart(9)} ${r.abi ?? "-"}`,
    );
  }
  return `${lines.join("\n")}\n`;
}

function positive(text: string, what: string, integer: boolean): number {
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || n <= 0 || (integer && !Number.isInteger(n)))
    throw new XmError(`${what} must be a positive ${integer ? "whole number" : "number"}, not "${text}"`);
  return n;
}

export function registerMoreCommands(
  xm: Command,
  conn: () => Connection,
  run: <A extends unknown[]>(fn: (...args: A) => Promise<void>) => (...args: A) => Promise<void>,
): void {
  xm.command("log")
    .description("show tsxend's log (the end of its log file)")
    .action(
      run(async () => {
        const r = await request<{ file: string | null; text: string }>(conn(), "GET", "/log");
        if (r.file === null) throw new XmError("this tsxend keeps no log file");
        process.stdout.write(r.text);
      }),
    );

  xm.command("uptime")
    .description("how long each domain has run in this tsxend")
    .argument("[domains...]", "only these domains")
    .action(
      run(async (doms: string[]) => {
        const c = conn();
        const rows = (await request<{ domains: Row[] }>(c, "GET", "/domains")).domains;
        for (const d of doms)
          if (!rows.some((r) => r.name === d || String(r.id) === d))
            await request(c, "GET", `/domains/${encodeURIComponent(d)}`);
        const now = Date.now();
        const lines = [`${"Name".padEnd(32)} ${"ID".padStart(4)} Uptime`];
        for (const r of rows) {
          if (doms.length > 0 && !doms.includes(r.name) && !doms.includes(String(r.id))) continue;
          const up = r.startedMs === undefined ? "-" : formatUptime((now - r.startedMs) / 1000);
          lines.push(`${r.name.padEnd(32)} ${String(r.id).padStart(4)} ${up}`);
        }
        process.stdout.write(`${lines.join("\n")}\n`);
      }),
    );

  xm.command("top")
    .description("per-domain CPU %, memory and state, live (q quits) or with -b in batch")
    .option("-b, --batch", "plain screens one after another, for scripts and pipes")
    .option("-n, --iterations <n>", "stop after n screens")
    .option("-d, --delay <s>", "seconds between screens (default 1)")
    .action(
      run(async (o: { batch?: boolean; iterations?: string; delay?: string }) => {
        const c = conn();
        const delayMs = o.delay === undefined ? 1000 : positive(o.delay, "the delay (-d)", false) * 1000;
        const limit = o.iterations === undefined ? Infinity : positive(o.iterations, "-n", true);
        const live = !o.batch && process.stdout.isTTY === true;
        let quit = false;
        let wake: (() => void) | null = null;
        const stdin = process.stdin;
        const onKey = (b: Buffer): void => {
          // q, Ctrl-C, Esc
          if (b.includes(0x71) || b.includes(0x03) || b.includes(0x1b)) {
            quit = true;
            wake?.();
          }
        };
        if (live && stdin.isTTY) {
          stdin.setRawMode(true);
          stdin.on("data", onKey);
          stdin.resume();
        }
        try {
          let before = await sample(c);
          for (let i = 0; i < limit && !quit; i++) {
            await new Promise<void>((r) => {
              wake = r;
              setTimeout(r, delayMs);
            });
            if (quit) break;
            const now = await sample(c);
            const screen = formatTop(before, now, new Date());
            // Live: each screen replaces the last (home, clear); batch: one after another.
            process.stdout.write(live ? `\x1b[H\x1b[2J${screen}` : `${i > 0 ? "\n" : ""}${screen}`);
            before = now;
          }
        } finally {
          if (live && stdin.isTTY) {
            stdin.off("data", onKey);
            stdin.setRawMode(false);
            stdin.pause();
          }
        }
      }),
    );

  xm.command("sysrq")
    .description("send a magic SysRq key to a domain (XenLinux hands it to handle_sysrq)")
    .argument("<domain>", "domain name or id")
    .argument("<key>", "the key, one character (h: help, s: sync, t: tasks...)")
    .action(
      run(async (dom: string, key: string) => {
        if (!/^[\x21-\x7e]$/.test(key))
          throw new XmError(`a sysrq key is one printable character, not "${key}"`);
        await request(conn(), "POST", `/domains/${encodeURIComponent(dom)}/sysrq`, { key });
      }),
    );
}

/**
 * xm create -n: the configuration as xm would send it, in xend's SXP (as xm's dry run printed
 * it), with paths resolved from the file's directory.
 */
export function formatConfigSxp(c: DomainConfig, base: string): string {
  const q = (v: string | number): string => {
    const t = String(v);
    return /^[A-Za-z0-9_./:+-]+$/.test(t) ? t : `'${t.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
  };
  const image = [`(kernel ${q(resolve(base, c.kernel))})`];
  if (c.ramdisk !== undefined) image.push(`(ramdisk ${q(resolve(base, c.ramdisk))})`);
  if (c.cmdline !== "") image.push(`(args ${q(c.cmdline)})`);
  const lines = [
    "(vm",
    `    (name ${q(c.name)})`,
    `    (memory ${c.memoryMiB})`,
    `    (cpu ${c.cpu})`,
    `    (vcpus ${c.vcpus})`,
    `    (abi ${c.abi})`,
    `    (on_poweroff ${c.onPoweroff})`,
    `    (on_reboot ${c.onReboot})`,
    `    (on_crash ${c.onCrash})`,
    `    (image (linux ${image.join(" ")}))`,
  ];
  for (const d of c.disks ?? [])
    lines.push(
      `    (device (vbd (uname file:${q(resolve(base, d.path))}) (dev ${d.dev}) (mode ${d.writable ? "w" : "r"}${d.force ? "!" : ""})))`,
    );
  for (const v of c.vifs ?? []) lines.push(`    (device (vif (mac ${v.mac}) (bridge ${q(v.bridge)})))`);
  return `${lines.join("\n")}\n)\n`;
}
