/**
 * `tsxen xm <command>`: the user manual's xm, talking to tsxend (docs/api.md). Domains are
 * named by name or id; errors go to stderr as "xm: <what went wrong>" with exit status 1.
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { Command } from "commander";
import { CONSOLE_RING_SIZE } from "../public/dom0_ops.js";
import { type ConfigValue, looksLikeConfig, parseDomainConfig, parseOverride } from "../tools/config.js";
import { attachConsole, type Connection, connection, request, streamed, XmError } from "./xm-client.js";
import { registerDebugCommand } from "./xm-debug.js";
import { registerDeviceCommands } from "./xm-devices.js";
import { formatConfigSxp, registerMoreCommands } from "./xm-more.js";

interface DomainRow {
  id: number;
  name: string;
  memKiB: number;
  maxMemKiB: number;
  targetKiB?: number;
  cpu: number;
  state: string;
  cpuTimeNs: number;
  shutdownReason?: string;
  crashReason?: string;
  /** Guest interface revision ("2005-03" / "2005-07"). */
  abi?: string;
  onPoweroff?: string;
  onReboot?: string;
  onCrash?: string;
  kernel?: string;
  cmdline?: string;
  restarts?: number;
}

/** An SXP atom: bare when it can be, else quoted as xend's sxp.show quoted strings. */
function atom(v: string | number): string {
  const t = String(v);
  return /^[A-Za-z0-9_./:+-]+$/.test(t) ? t : `'${t.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

/**
 * `xm list -l`: each domain in xend's SXP, (domain (id …) (name …) … (config (vm …))), with
 * xend's field names where it had them and tsxen's (abi) where it did not.
 */
export function formatSxp(rows: DomainRow[]): string {
  const field = (k: string, v: string | number | undefined): string =>
    v === undefined ? "" : `\n    (${k} ${atom(v)})`;
  return rows
    .map((d) => {
      const image =
        d.kernel === undefined
          ? ""
          : `\n            (image (linux (kernel ${atom(d.kernel)})${d.cmdline ? ` (args ${atom(d.cmdline)})` : ""}))`;
      const vm =
        d.id === 0
          ? ""
          : `\n    (config\n        (vm\n            (name ${atom(d.name)})\n            (memory ${Math.round(d.maxMemKiB / 1024)})` +
            ["on_poweroff", "on_reboot", "on_crash"]
              .map((k, i) => {
                const v = [d.onPoweroff, d.onReboot, d.onCrash][i];
                return v === undefined ? "" : `\n            (${k} ${atom(v)})`;
              })
              .join("") +
            `${image}\n        )\n    )`;
      return (
        `(domain${field("id", d.id)}${field("name", d.name)}${field("memory", Math.round(d.memKiB / 1024))}` +
        `${field("maxmem", Math.round(d.maxMemKiB / 1024))}${field("state", d.state)}${field("cpu", d.cpu)}` +
        `${field("cpu_time", (d.cpuTimeNs / 1e9).toFixed(3))}${field("abi", d.abi)}${field("restart_count", d.restarts)}` +
        `${field("shutdown_reason", d.shutdownReason)}${field("crash_reason", d.crashReason)}${vm}\n)\n`
      );
    })
    .join("");
}

/** `xm list`: the manual's columns, then tsxen's ABI (each domain's interface revision). */
export function formatList(rows: DomainRow[]): string {
  const lines = [
    `${"Name".padEnd(24)}${"Id".padStart(4)}${"Mem(MB)".padStart(9)}${"CPU".padStart(5)}  ${"State".padEnd(6)}${"Time(s)".padStart(9)}  ABI`,
  ];
  for (const r of rows) {
    lines.push(
      `${r.name.padEnd(24)}${String(r.id).padStart(4)}${String(Math.floor(r.memKiB / 1024)).padStart(9)}${String(r.cpu).padStart(5)}  ${r.state.padEnd(6)}${(r.cpuTimeNs / 1e9).toFixed(1).padStart(9)}  ${r.abi ?? "-"}`,
    );
  }
  return `${lines.join("\n")}\n`;
}

function progressBar(label: string): {
  update: (phase: string, done: number, total: number) => void;
  end: () => void;
} {
  const tty = process.stderr.isTTY === true;
  let shown = false;
  // Not a terminal (a pipe, a file): a plain line per phase and per tenth, no \r redraws.
  let told = "";
  return {
    update(phase, done, total) {
      const pct = total === 0 ? 100 : Math.floor((done * 100) / total);
      const mib = (n: number): string => (n / 1048576).toFixed(1);
      if (!tty) {
        const step = `${phase} ${Math.floor(pct / 10)}`;
        if (step !== told)
          process.stderr.write(`${label}: ${phase} ${pct}% ${mib(done)}/${mib(total)} MiB\n`);
        told = step;
        return;
      }
      const width = 30;
      const filled = Math.round((pct * width) / 100);
      process.stderr.write(
        `\r${label}: ${phase} [${"#".repeat(filled)}${" ".repeat(width - filled)}] ${String(pct).padStart(3)}% ${mib(done)}/${mib(total)} MiB`,
      );
      shown = true;
    },
    end() {
      if (shown) process.stderr.write("\n");
    },
  };
}

function mib(text: string, what: string): number {
  if (/^-\d+$/.test(text) || /^0+$/.test(text))
    throw new XmError(`memory must be positive: ${what} is ${Number(text)} MiB`);
  if (!/^\d+$/.test(text)) throw new XmError(`${what} must be a whole number of MiB, not "${text}"`);
  return Number(text);
}

function int(text: string, what: string): number {
  if (!/^-?\d+$/.test(text)) throw new XmError(`${what} must be a whole number, not "${text}"`);
  return Number(text);
}

const enc = encodeURIComponent;

async function waitGone(c: Connection, dom: string, what: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const rows = (await request<{ domains: DomainRow[] }>(c, "GET", "/domains")).domains;
    const still = rows.find((r) => r.name === dom || String(r.id) === dom);
    if (still === undefined || still.state.includes("s") || still.state.includes("c")) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new XmError(`domain ${dom} did not ${what} within 60 s`);
}

/**
 * A reader that goes away (`xm console X | head -3`) ends xm quietly, as SIGPIPE ends a C
 * tool, instead of an EPIPE stack trace; the daemon sees its console socket close.
 */
function endQuietlyOnClosedStdout(): void {
  if (process.stdout.listenerCount("error") > 0) return;
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(process.exitCode ?? 0);
    process.stderr.write(`xm: cannot write the output: ${e.message}\n`);
    process.exit(1);
  });
}

export function registerXm(program: Command): void {
  const xm = program
    .command("xm")
    .description("manage domains on a running tsxend (see `tsxen xm help`)")
    .option("--daemon <url>", "tsxend's address (default: $TSXEN_DAEMON or http://127.0.0.1:8006)")
    .option(
      "--token <secret>",
      "the daemon's token (default: $TSXEN_TOKEN, else for a daemon on this machine its token file in $TSXEN_STATE_DIR or ~/.local/state/tsxen)",
    );
  const conn = (): Connection => connection(xm.opts() as { daemon?: string; token?: string });
  const run =
    <A extends unknown[]>(fn: (...args: A) => Promise<void>) =>
    async (...args: A): Promise<void> => {
      endQuietlyOnClosedStdout();
      try {
        await fn(...args);
      } catch (e) {
        const msg = e instanceof XmError ? e.message : `${(e as Error).message}`;
        process.stderr.write(`xm: ${msg}\n`);
        process.exitCode = 1;
      }
    };
  const simple = (name: string, desc: string, action: string, aliases: string[] = []): void => {
    const cmd = xm
      .command(name)
      .description(desc)
      .argument("<domain>", "domain name or id")
      .action(
        run(async (dom: string) => {
          await request(conn(), "POST", `/domains/${enc(dom)}/${action}`, {});
        }),
      );
    for (const a of aliases) cmd.alias(a);
  };

  xm.command("create")
    .description("create a domain from a configuration file")
    .argument("<file>", "the domain configuration file")
    .argument("[vars...]", "variable settings var=value (override the file)")
    .option("-c, --console", "attach to the new domain's console")
    .option("-n, --dryrun", "print the configuration as it would be sent (SXP), create nothing")
    .action(
      run(async (file: string, vars: string[], o: { console?: boolean; dryrun?: boolean }) => {
        const path = resolve(file);
        let bytes: Buffer;
        try {
          bytes = readFileSync(path);
        } catch (e) {
          throw new XmError(
            `cannot read ${file}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`,
          );
        }
        if (!looksLikeConfig(bytes)) {
          throw new XmError(
            `${file} is not a domain configuration file (it should hold settings like kernel = "..."; to boot a kernel directly use tsxen run)`,
          );
        }
        for (const v of vars)
          if (!v.includes("=")) throw new XmError(`"${v}" is not a variable setting (expected var=value)`);
        if (o.dryrun) {
          const overrides = new Map<string, ConfigValue>();
          let config: ReturnType<typeof parseDomainConfig>;
          try {
            for (const v of vars) overrides.set(...parseOverride(v));
            config = parseDomainConfig(path, bytes.toString("utf8"), overrides);
          } catch (e) {
            throw new XmError((e as Error).message);
          }
          for (const w of config.warnings) process.stderr.write(`xm: warning: ${w}\n`);
          process.stdout.write(formatConfigSxp(config, dirname(path)));
          return;
        }
        const c = conn();
        const r = await request<{ domain: DomainRow; warnings: string[] }>(c, "POST", "/domains", {
          file: path,
          config: bytes.toString("utf8"),
          overrides: vars,
        });
        for (const w of r.warnings) process.stderr.write(`xm: warning: ${w}\n`);
        process.stdout.write(`Started domain ${r.domain.name} (id ${r.domain.id})\n`);
        if (o.console) await attachConsole(c, String(r.domain.id));
      }),
    );

  xm.command("list")
    .description("list domains: Name, Id, Mem(MB), CPU, State (r b p s c d), Time(s), ABI")
    .argument("[domains...]", "only these domains")
    .option("-l, --long", "everything known about each domain, in xend's SXP")
    .option("--json", "everything known about each domain, as JSON")
    .action(
      run(async (doms: string[], o: { long?: boolean; json?: boolean }) => {
        const c = conn();
        let rows = (await request<{ domains: DomainRow[] }>(c, "GET", "/domains")).domains;
        if (doms.length > 0) {
          for (const d of doms)
            if (!rows.some((r) => r.name === d || String(r.id) === d))
              await request(c, "GET", `/domains/${enc(d)}`);
          rows = rows.filter((r) => doms.includes(r.name) || doms.includes(String(r.id)));
        }
        if (o.json) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        else process.stdout.write(o.long ? formatSxp(rows) : formatList(rows));
      }),
    );

  xm.command("console")
    .description("attach to a domain's console (Ctrl-] detaches)")
    .argument("<domain>", "domain name or id")
    .action(
      run(async (dom: string) => {
        await attachConsole(conn(), dom);
      }),
    );

  registerDeviceCommands(xm, conn, run);
  registerMoreCommands(xm, conn, run);
  registerDebugCommand(xm, conn, run);
  simple("pause", "pause a domain's execution", "pause");
  simple("unpause", "unpause a domain", "unpause");
  simple("destroy", "kill a domain immediately", "destroy");

  for (const [name, what] of [
    ["shutdown", "shut down"],
    ["reboot", "reboot"],
  ] as const) {
    const cmd = xm
      .command(name)
      .description(`${what} a domain (applies its on_${name === "shutdown" ? "poweroff" : "reboot"} setting)`)
      .argument(name === "shutdown" ? "[domain]" : "<domain>", "domain name or id")
      .option("-w, --wait", "wait until the domain has stopped")
      .option("-t, --timeout <s>", "seconds the guest has to answer the request (default 5)");
    if (name === "shutdown")
      cmd
        .option("-a, --all", "every domain but Domain-0")
        .option("-R, --reboot", "reboot instead (as xm reboot)")
        .option("-H, --halt", "power off (the default)");
    cmd.action(
      run(
        async (
          dom: string | undefined,
          o: { wait?: boolean; timeout?: string; all?: boolean; reboot?: boolean; halt?: boolean },
        ) => {
          const c = conn();
          const body: Record<string, number> = {};
          if (o.timeout !== undefined) {
            const t = Number(o.timeout);
            if (!Number.isFinite(t) || t <= 0)
              throw new XmError(`the timeout must be a number of seconds, not "${o.timeout}"`);
            body.timeout = t;
          }
          if (o.reboot && o.halt) throw new XmError("-R (reboot) and -H (halt) ask for opposite things");
          if (o.all && dom !== undefined) throw new XmError("-a means every domain: name none with it");
          if (!o.all && dom === undefined) throw new XmError("which domain? (name one, or -a for all)");
          const action = name === "reboot" || o.reboot ? "reboot" : "shutdown";
          const rows = (await request<{ domains: DomainRow[] }>(c, "GET", "/domains")).domains;
          const doms =
            dom !== undefined
              ? [dom]
              : rows.filter((r) => r.id !== 0 && !/[scd]/.test(r.state)).map((r) => r.name);
          // -w follows each by id: a rebooted domain comes back under its name with a new one.
          const ids = doms.map((d) => String(rows.find((r) => r.name === d || String(r.id) === d)?.id ?? d));
          // Asked one after another, as xm did; each failure is said and the rest still asked.
          const failed: string[] = [];
          for (const d of doms) {
            try {
              await request(c, "POST", `/domains/${enc(d)}/${action}`, body);
            } catch (e) {
              if (doms.length === 1) throw e;
              process.stderr.write(`xm: ${d}: ${(e as Error).message}\n`);
              failed.push(d);
            }
          }
          if (o.wait)
            for (const [i, d] of doms.entries())
              if (!failed.includes(d))
                await waitGone(c, ids[i], action === "reboot" ? "reboot" : "shut down");
          if (failed.length > 0)
            throw new XmError(`${failed.length} of ${doms.length} domains were not asked`);
        },
      ),
    );
  }

  xm.command("dmesg")
    .description(
      `show Xen's console ring: its messages since boot or the last -c (${CONSOLE_RING_SIZE} bytes; once full, as in Xen, it keeps no more)`,
    )
    .option("-c, --clear", "clear them after showing")
    .action(
      run(async (o: { clear?: boolean }) => {
        const r = await request<{ text: string }>(conn(), "GET", `/dmesg${o.clear ? "?clear=1" : ""}`);
        process.stdout.write(r.text);
        if (r.text.length >= CONSOLE_RING_SIZE)
          process.stderr.write(
            `xm: Xen's console ring is full (${CONSOLE_RING_SIZE} bytes): later messages were not kept${o.clear ? "" : "; xm dmesg -c clears it"}\n`,
          );
      }),
    );

  xm.command("info")
    .description("information about the host (physinfo)")
    .action(
      run(async () => {
        const r = await request<Record<string, unknown>>(conn(), "GET", "/info");
        for (const [k, v] of Object.entries(r)) process.stdout.write(`${k.padEnd(16)}: ${v}\n`);
      }),
    );

  xm.command("mem-set")
    .alias("balloon")
    .description("set a domain's memory target (the balloon), in MiB")
    .argument("<domain>", "domain name or id")
    .argument("<MiB>", "target")
    // So that "-5" reaches mib() as the value it was meant as, not as an unknown option.
    .allowUnknownOption()
    .action(
      run(async (dom: string, m: string) => {
        await request(conn(), "POST", `/domains/${enc(dom)}/mem-set`, { mib: mib(m, "the target") });
      }),
    );

  xm.command("mem-max")
    .alias("maxmem")
    .description("set the most memory a domain may hold, in MiB")
    .argument("<domain>", "domain name or id")
    .argument("<MiB>", "limit")
    .allowUnknownOption()
    .action(
      run(async (dom: string, m: string) => {
        await request(conn(), "POST", `/domains/${enc(dom)}/mem-max`, { mib: mib(m, "the limit") });
      }),
    );

  xm.command("pincpu")
    .description("pin a domain to a physical CPU")
    .argument("<domain>", "domain name or id")
    .argument("<cpu>", "CPU number")
    .action(
      run(async (dom: string, cpu: string) => {
        await request(conn(), "POST", `/domains/${enc(dom)}/pincpu`, { cpu: int(cpu, "the CPU") });
      }),
    );

  xm.command("sched-bvt")
    .alias("bvt")
    .description("set a domain's BVT parameters (warpl and warpu in ms, as DOM0_ADJUSTDOM takes them)")
    .argument("<domain>", "domain name or id")
    .argument("<mcuadv>", "MCU advance (inverse weight)")
    .argument("<warpback>", "warp back allowed (0 or 1)")
    .argument("<warpvalue>", "warp value")
    .argument("<warpl>", "warp limit")
    .argument("<warpu>", "unwarp requirement")
    .action(
      run(
        async (
          dom: string,
          mcuadv: string,
          warpback: string,
          warpvalue: string,
          warpl: string,
          warpu: string,
        ) => {
          await request(conn(), "POST", `/domains/${enc(dom)}/sched-bvt`, {
            mcuadv: int(mcuadv, "mcuadv"),
            warpback: int(warpback, "warpback"),
            warpvalue: int(warpvalue, "warpvalue"),
            warpl: int(warpl, "warpl"),
            warpu: int(warpu, "warpu"),
          });
        },
      ),
    );

  xm.command("sched-bvt-ctxallow")
    .alias("bvt_ctxallow")
    .description("set BVT's context-switch allowance (ns)")
    .argument("<allow>", "allowance in ns")
    .action(
      run(async (allow: string) => {
        await request(conn(), "POST", "/sched/bvt-ctxallow", { ns: int(allow, "the allowance") });
      }),
    );

  xm.command("domid")
    .description("print a domain's id")
    .argument("<name>", "domain name")
    .action(
      run(async (name: string) => {
        const r = await request<DomainRow>(conn(), "GET", `/domains/${enc(name)}`);
        process.stdout.write(`${r.id}\n`);
      }),
    );

  xm.command("domname")
    .description("print a domain's name")
    .argument("<id>", "domain id")
    .action(
      run(async (id: string) => {
        if (!/^\d+$/.test(id)) throw new XmError(`a domain id is a number, not "${id}"`);
        const r = await request<DomainRow>(conn(), "GET", `/domains/${enc(id)}`);
        process.stdout.write(`${r.name}\n`);
      }),
    );

  xm.command("save")
    .description("save a domain's state to a file and stop it")
    .argument("<domain>", "domain name or id")
    .argument("<file>", "where to write the image")
    .action(
      run(async (dom: string, file: string) => {
        const path = resolve(file);
        const bar = progressBar(`Saving ${dom} to ${file}`);
        try {
          await streamed(conn(), `/domains/${enc(dom)}/save`, { path }, bar.update);
        } finally {
          bar.end();
        }
      }),
    );

  xm.command("migrate")
    .description("move a domain to another tsxend (stop, copy, run there; --live: copy while it runs)")
    .argument("<domain>", "domain name or id")
    .argument("<host>", "the other tsxend: host, host:port (port 8006 by default) or http:// URL")
    .option("-l, --live", "keep the domain running while its memory is copied (pre-copy rounds)")
    .option("--dest-token <secret>", "the other tsxend's token (its token file, or its --token)")
    .action(
      run(async (dom: string, host: string, o: { live?: boolean; destToken?: string }) => {
        const bar = progressBar(`Migrating ${dom} to ${host}`);
        let r: Record<string, unknown>;
        try {
          r = await streamed(
            conn(),
            `/domains/${enc(dom)}/migrate`,
            { to: host, live: o.live === true, token: o.destToken },
            bar.update,
          );
        } finally {
          bar.end();
        }
        const d = r.domain as DomainRow;
        const how =
          r.live === true
            ? ` (live: pages sent per round ${(r.rounds as number[]).join(", ")}, then ${r.finalPages} with the domain stopped for ${r.downtimeMs} ms)`
            : "";
        process.stdout.write(`Migrated ${dom} to ${r.to}: domain ${d.name} (id ${d.id}) there${how}\n`);
      }),
    );

  xm.command("restore")
    .description("restore a domain from a saved image")
    .argument("<file>", "the image written by xm save")
    .action(
      run(async (file: string) => {
        const path = resolve(file);
        const bar = progressBar(`Restoring ${file}`);
        let r: Record<string, unknown>;
        try {
          r = await streamed(conn(), "/restore", { path }, bar.update);
        } finally {
          bar.end();
        }
        const d = r.domain as DomainRow;
        process.stdout.write(`Restored domain ${d.name} (id ${d.id})\n`);
      }),
    );
}
