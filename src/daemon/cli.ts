/**
 * `tsxen daemon`: starts tsxend in the foreground. It prints where it listens on stdout
 * ("tsxend listening on http://HOST:PORT", then the dashboard's URL with the token) and stops
 * cleanly on SIGTERM or SIGINT.
 */
import { writeFileSync } from "node:fs";
import { totalmem } from "node:os";
import { resolve } from "node:path";
import type { Command } from "commander";
import { MAX_MACHINE_MIB, machineMemoryOption } from "../machine/memory.js";
import { UplinkError, uplinkOption } from "../tools/backends/passt.js";
import { Daemon } from "./daemon.js";
import { DEFAULT_PORT, listenError } from "./port.js";
import { IDLE_SLOP_MS, type Pacing, TIMER_SLOP_MS } from "./runloop.js";

interface DaemonCliOptions {
  listen: string;
  port: string;
  token?: string;
  stateDir?: string;
  allowHost: string[];
  machineMemory: string;
  cpus: string;
  sched: string;
  pace: string;
  timerSlop: string;
  idleSlop: string;
  onStop: string;
  portFile?: string;
  uplink?: string;
  forward: string[];
  log?: string;
}

function whole(text: string, what: string, min: number, max: number): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max)
    throw new Error(`${what} must be a whole number ${min}..${max}, not "${text}"`);
  return Number(text);
}

export async function runDaemon(o: DaemonCliOptions): Promise<number> {
  // Before the daemon (and its log) exists, a bad option is said plainly; then its log says it.
  let daemon: Daemon | undefined;
  const err = (m: string): void =>
    daemon === undefined ? void process.stderr.write(`tsxend: ${m}\n`) : daemon.note(m);
  // The last net: whatever escapes every request's own handler is logged, and the daemon
  // (with every domain on it) runs on. Tests still assert that known paths never get here.
  process.on("uncaughtException", (e) => err(`internal error (tsxend runs on): ${e.stack ?? e.message}`));
  process.on("unhandledRejection", (e) =>
    err(`internal error (tsxend runs on): ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`),
  );
  try {
    if (o.pace !== "realtime" && o.pace !== "fast")
      throw new Error(`--pace must be realtime or fast, not "${o.pace}"`);
    if (o.onStop !== "save" && o.onStop !== "destroy")
      throw new Error(`--on-stop must be save or destroy, not "${o.onStop}"`);
    daemon = new Daemon({
      host: o.listen,
      port: whole(o.port, "--port", 0, 65535),
      token: o.token || process.env.TSXEN_TOKEN || undefined,
      stateDir: o.stateDir,
      allowHosts: o.allowHost,
      machineMemoryMiB: machineMemoryOption(o.machineMemory, Math.floor(totalmem() / 2 ** 20), 16),
      cpus: whole(o.cpus, "--cpus", 1, 32),
      scheduler: o.sched,
      pacing: o.pace as Pacing,
      timerSlopMs: whole(o.timerSlop, "--timer-slop", 0, 1000),
      idleSlopMs: whole(o.idleSlop, "--idle-slop", 0, 1000),
      onStop: o.onStop,
      uplink: uplinkOption(o.uplink, o.forward),
      logFile: o.log === undefined ? undefined : resolve(o.log),
    });
  } catch (e) {
    err((e as Error).message);
    return 2;
  }
  const started = daemon;
  // Handled from the start: a SIGTERM while the saved domains are restored saves them again.
  const stopped = new Promise<void>((resolve) => {
    const stop = (sig: string): void => {
      err(`${sig}: ${o.onStop === "save" ? "saving" : "stopping"} guests and shutting down`);
      void started.close().then(resolve);
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
  let addr: import("node:net").AddressInfo;
  try {
    addr = await started.listen();
  } catch (e) {
    err(e instanceof UplinkError ? e.message : listenError(e as Error, o.listen, o.port));
    return 1;
  }
  const host = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  process.stdout.write(`tsxend listening on http://${host}:${addr.port}\n`);
  // As Jupyter does: one URL that lets a browser in; the page keeps the token.
  process.stdout.write(`tsxend dashboard: ${started.dashboardUrl()}\n`);
  if (o.portFile) writeFileSync(o.portFile, `${addr.port}\n`);
  await stopped;
  return 0;
}

export function registerDaemon(program: Command): void {
  program
    .command("daemon")
    .description("run tsxend: the hypervisor and toolstack, managed with `tsxen xm`")
    .option("--listen <host>", "address to listen on", "127.0.0.1")
    .option("--port <n>", "TCP port (0 picks a free one)", String(DEFAULT_PORT))
    .option(
      "--token <secret>",
      "the bearer token clients must send (default: $TSXEN_TOKEN, else the state directory's token file)",
    )
    .option(
      "--state-dir <dir>",
      "tsxend's state directory, which holds its token file (default: $TSXEN_STATE_DIR, else ~/.local/state/tsxen)",
    )
    .option(
      "--allow-host <name>",
      "another name (or name:port) clients reach tsxend by, e.g. behind a proxy; repeatable",
      (v: string, all: string[]) => [...all, v],
      [] as string[],
    )
    .option("--machine-memory <MiB>", `the machine's memory in MiB (16..${MAX_MACHINE_MIB})`, "256")
    .option("--cpus <n>", "physical CPUs", "1")
    .option("--sched <name>", "scheduler: bvt or rrobin", "bvt")
    .option("--pace <mode>", "realtime: guest time follows the wall clock; fast: run flat out", "realtime")
    .option(
      "--timer-slop <ms>",
      "realtime: how late a guest's timer may be served (wall clock) so one wake-up serves many; its guest time stays exact",
      String(TIMER_SLOP_MS),
    )
    .option(
      "--idle-slop <ms>",
      "realtime: the timer slop once no domain has done I/O for a while (console, dom0 events, API); at most --timer-slop to turn it off",
      String(IDLE_SLOP_MS),
    )
    .option(
      "--on-stop <what>",
      "on SIGTERM: save running domains into the state directory (restored at the next start) or destroy them",
      "save",
    )
    .option("--port-file <path>", "write the port number here once listening")
    .option(
      "--uplink <bridge>",
      "connect this bridge (e.g. xenbr0) to the outside world through passt: DHCP, the host as the gateway 10.0.2.2",
    )
    .option(
      "--forward <tcp:HOSTPORT:GUESTPORT>",
      "forward a host port (on 127.0.0.1 unless tcp:ADDR:HOSTPORT:GUESTPORT) to the uplink's guest; repeatable",
      (v: string, all: string[]) => [...all, v],
      [] as string[],
    )
    .option(
      "--log <file>",
      "append the log here, each line stamped (default: tsxend.log in the state directory)",
    )
    .action(async (o: DaemonCliOptions) => {
      process.exitCode = await runDaemon(o);
    });
}
