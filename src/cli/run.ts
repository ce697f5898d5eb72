/**
 * `tsxen run <kernel.elf>`: one process, no daemon. Builds the machine and the domain as xend
 * did (its control interface served), runs it with its console on stdout and stdin as its
 * keyboard until it powers off or N seconds of guest time have passed; a reboot rebuilds it
 * (on_reboot = restart, xm's default). The guest's console bytes go to stdout unaltered,
 * whether it writes them with console_io or over its control interface (CMSG_CONSOLE, a 2005
 * XenLinux domU); tsxen's own messages go to stderr.
 */
import { readFileSync } from "node:fs";
import { totalmem } from "node:os";
import { basename, dirname, resolve } from "node:path";
import type { Command } from "commander";
import { BUNDLED_GUEST } from "../daemon/web-files.js";
import { MAX_MACHINE_MIB, machineMemoryOption } from "../machine/memory.js";
import { Shutdown } from "../public/xen.js";
import { sessionDevices } from "../tools/backends/devices.js";
import {
  type DiskSpec,
  type ExitAction,
  looksLikeConfig,
  parseDiskSpec,
  parseDomainConfig,
  parseOverride,
  parseVifSpec,
  type VifSpec,
} from "../tools/config.js";
import { CHECKPOINT_EVERY, RecordError, SessionMachine, sha256 } from "../tools/replay.js";
import { GuestSession, type SessionEnd } from "../tools/session.js";
import { ABI_NAMES, type AbiName, abiByName, DEFAULT_ABI } from "../xen/abi.js";
import { Hypervisor } from "../xen/hypervisor.js";
import { prepareDebugRun, replayVerdict, runLoop, writeRecord } from "./run-debug.js";

export interface RunOptions {
  memory: string;
  /** An initial ramdisk, the guest's start_info module. */
  ramdisk?: string;
  /** --no-reboot: a reboot ends the run (on_reboot = destroy). */
  reboot?: boolean;
  seconds?: string;
  cmdline: string;
  machineMemory: string;
  /** Guest interface revision: 2005-03 (default) or 2005-07. */
  abi?: string;
  /** --disk file:IMAGE,DEV,MODE (repeatable), as a configuration's disk entries. */
  disk?: string[];
  /** --vif "mac=...,bridge=..." (repeatable), as a configuration's vif entries. */
  vif?: string[];
  /** name=value variables for a configuration file (xm create's), e.g. vmid=1. */
  vars?: string[];
  /** --gdb [host:]port, --gdb-nowait [host:]port, --record FILE, --replay FILE (run-debug.ts). */
  gdb?: string;
  gdbNowait?: string;
  record?: string;
  replay?: string;
}

function wholeNumber(text: string, what: string): number {
  if (!/^\d+$/.test(text)) throw new Error(`${what} must be a whole number, not "${text}"`);
  return Number(text);
}

/** Exit statuses (README, `tsxen run`). */
export const RunExit = Object.freeze({ OK: 0, FAILED: 1, USAGE: 2, REBOOTED: 3 } as const);

/** Typed at a terminal, Ctrl-] ends the run (xm console's escape). */
const ESCAPE = 0x1d;

/**
 * The process's stdin as the guest's keyboard: bytes go to the session as they arrive. A
 * terminal is put in raw mode, as xm console did, so the guest sees every key as typed (its
 * shell echoes and edits; Ctrl-C goes to it) and Ctrl-] ends the run (machine.escape(), logged
 * like a key). waitForInput resolves true when more bytes came, false once stdin has ended.
 */
function feedStdin(machine: SessionMachine): { stop: () => void } {
  const stdin = process.stdin;
  const raw = stdin.isTTY === true;
  if (raw) stdin.setRawMode(true);
  const onEnd = (): void => {
    machine.inputClosed = true;
    machine.wakeUp();
  };
  const onData = (b: Buffer): void => {
    const at = raw ? b.indexOf(ESCAPE) : -1;
    if (machine.escaped) return;
    machine.input(at < 0 ? b : b.subarray(0, at));
    if (at >= 0) machine.escape();
  };
  stdin.on("data", onData);
  stdin.on("end", onEnd);
  stdin.on("error", onEnd);
  return {
    stop: () => {
      stdin.off("data", onData);
      stdin.off("end", onEnd);
      if (raw) stdin.setRawMode(false);
      stdin.pause();
      stdin.destroy();
    },
  };
}

/** What to boot: from the command line, or from a domain configuration file (xm's syntax). */
interface Boot {
  name: string;
  image: Uint8Array;
  ramdisk?: Uint8Array;
  memoryMiB?: number;
  cmdline: string;
  abi?: string;
  onPoweroff?: ExitAction;
  onReboot?: ExitAction;
  onCrash?: ExitAction;
  disks: DiskSpec[];
  vifs: VifSpec[];
}

/** --disk and --vif, the image paths relative to the current directory. */
function deviceOptions(opts: RunOptions): { disks: DiskSpec[]; vifs: VifSpec[] } {
  const disks = (opts.disk ?? []).map((t) => {
    const d = parseDiskSpec(t);
    return { ...d, path: resolve(d.path) };
  });
  return { disks, vifs: (opts.vif ?? []).map(parseVifSpec) };
}

function readBoot(kernelPath: string, opts: RunOptions): Boot {
  const read = (path: string, what: string): Uint8Array => {
    try {
      return readFileSync(path);
    } catch (e) {
      throw new Error(`cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).message}`);
    }
  };
  const image = read(kernelPath, "kernel");
  const ramdisk = opts.ramdisk === undefined ? undefined : read(opts.ramdisk, "ramdisk");
  const extra = deviceOptions(opts);
  const vars = opts.vars ?? [];
  if (!looksLikeConfig(image)) {
    if (vars.length > 0)
      throw new Error(`${vars[0]}: variables are for a configuration file, and ${kernelPath} is a kernel`);
    return { name: basename(kernelPath), image, ramdisk, cmdline: opts.cmdline, ...extra };
  }
  // A domain configuration file: boot the kernel (and ramdisk) it names, with its settings;
  // --cmdline and --ramdisk win over the file's.
  const overrides = new Map(vars.map(parseOverride));
  const config = parseDomainConfig(kernelPath, Buffer.from(image).toString("utf8"), overrides);
  for (const w of config.warnings) process.stderr.write(`tsxen: warning: ${w}\n`);
  const here = dirname(kernelPath);
  return {
    name: config.name,
    image: read(resolve(here, config.kernel), "kernel"),
    ramdisk:
      ramdisk ?? (config.ramdisk === undefined ? undefined : read(resolve(here, config.ramdisk), "ramdisk")),
    memoryMiB: config.memoryMiB,
    cmdline: opts.cmdline !== "" ? opts.cmdline : config.cmdline,
    abi: config.abi,
    onPoweroff: config.onPoweroff,
    onReboot: config.onReboot,
    onCrash: config.onCrash,
    // The file's disks (relative to it) and vifs, then the command line's.
    disks: [...(config.disks ?? []).map((d) => ({ ...d, path: resolve(here, d.path) })), ...extra.disks],
    vifs: [...(config.vifs ?? []), ...extra.vifs],
  };
}

/** Runs a kernel; returns the process exit status (RunExit). */
export async function runKernel(kernelPath: string, opts: RunOptions): Promise<number> {
  const err = (m: string): void => void process.stderr.write(`tsxen: ${m}\n`);
  let boot: Boot;
  try {
    boot = readBoot(kernelPath, opts);
  } catch (e) {
    err((e as Error).message);
    return RunExit.USAGE;
  }
  let machine: SessionMachine;
  let seconds: number | undefined;
  let replaying = false;
  const logged = new Set<string>();
  // Console bytes shown: a machine rebuilt by gdb's reverse execution replays its output
  // silently up to what was shown already.
  let shown = 0;
  // Console bytes the machine has written: in its checkpoints, so a restored one writes them
  // again silently too.
  const written = { bytes: 0 };
  const consoleKept: Uint8Array[] = [];
  try {
    const memoryMiB = boot.memoryMiB ?? wholeNumber(opts.memory, "--memory");
    seconds = opts.seconds === undefined ? undefined : wholeNumber(opts.seconds, "--seconds");
    const abi = opts.abi ?? boot.abi ?? DEFAULT_ABI;
    if (abiByName(abi) === null)
      throw new Error(`--abi must be one of ${ABI_NAMES.join(", ")}, not "${abi}"`);
    const machineMiB = machineMemoryOption(opts.machineMemory, Math.floor(totalmem() / 2 ** 20));
    const keep = opts.record !== undefined || opts.replay !== undefined;
    const devices = boot.disks.length > 0 || boot.vifs.length > 0;
    // Everything else that shapes the run; the disk images go in by size and SHA-256. The vifs
    // have a bridge of their own here (no uplink): nothing comes in over them from outside.
    const prepared = prepareDebugRun(
      opts,
      boot.image,
      {
        memoryMiB,
        machineMiB,
        cmdline: boot.cmdline,
        abi,
        ramdiskSha256: boot.ramdisk === undefined ? null : sha256(boot.ramdisk),
        reboot: opts.reboot !== false,
        name: boot.name,
        on_poweroff: boot.onPoweroff ?? null,
        on_reboot: boot.onReboot ?? null,
        on_crash: boot.onCrash ?? null,
        vars: opts.vars ?? [],
        seconds: seconds ?? null,
        vifs: boot.vifs,
      },
      boot.disks,
    );
    replaying = prepared.replaying;
    const make = (): GuestSession => {
      written.bytes = 0;
      const stdout = (bytes: Uint8Array): void => {
        const start = written.bytes;
        written.bytes += bytes.length;
        if (written.bytes <= shown) return;
        const fresh = bytes.subarray(Math.max(0, shown - start));
        shown = written.bytes;
        if (keep) consoleKept.push(Uint8Array.from(fresh));
        process.stdout.write(fresh);
      };
      const hv = new Hypervisor({
        memoryMiB: machineMiB,
        onConsole: (_d, bytes) => stdout(bytes),
        onLog: (m) => {
          logged.add(m);
          err(m);
        },
      });
      return new GuestSession(hv, {
        name: boot.name,
        image: boot.image,
        module: boot.ramdisk,
        memoryMiB,
        cmdline: boot.cmdline,
        abi: abi as AbiName,
        onPoweroff: boot.onPoweroff,
        onReboot: opts.reboot === false ? "destroy" : boot.onReboot,
        onCrash: boot.onCrash,
        onConsole: stdout,
        onNote: err,
        devices: sessionDevices(hv, boot.disks, boot.vifs, err),
      });
    };
    const debugged = opts.gdb !== undefined || opts.gdbNowait !== undefined;
    machine = new SessionMachine(make, prepared.log, {
      rewindable: !devices,
      checkpointEvery: debugged ? CHECKPOINT_EVERY : undefined,
      hostState: [written],
    });
  } catch (e) {
    err((e as Error).message);
    return RunExit.USAGE;
  }
  const limitNs = seconds === undefined ? Number.POSITIVE_INFINITY : seconds * 1e9;
  // Run in slices of guest time, letting stdin's data events in between (a replay takes its
  // input from the log: stdin is left alone).
  if (replaying) machine.inputClosed = true;
  const input = replaying ? { stop: () => {} } : feedStdin(machine);
  let end: SessionEnd | null = null;
  try {
    const r = await runLoop(machine, opts, limitNs, err, () => machine.escaped);
    end = r.end;
    const all = Buffer.concat(consoleKept);
    if (opts.record !== undefined) {
      writeRecord(opts.record, machine, all);
      err(
        `recorded ${machine.log.events.length} inputs to ${opts.record}; state hash ${machine.log.end?.stateHash}`,
      );
    }
    if (replaying) {
      const problem = replayVerdict(machine, all, r.divergence);
      if (problem !== null) {
        err(`replay diverged: ${problem}`);
        return RunExit.FAILED;
      }
      err(
        `replayed ${machine.log.events.length} inputs; state hash ${machine.endRecord(all).stateHash} (as recorded)`,
      );
    }
  } catch (e) {
    err(
      e instanceof Error && !(e instanceof RecordError)
        ? `internal error: ${e.stack ?? e}`
        : (e as Error).message,
    );
    return RunExit.FAILED;
  } finally {
    input.stop();
  }
  if (machine.escaped) {
    err("stopped at Ctrl-]");
    return RunExit.FAILED;
  }
  if (end === null) return RunExit.OK; // the time limit
  switch (end.kind) {
    case "shutdown":
      if (end.reason === Shutdown.poweroff) return RunExit.OK;
      err(end.text);
      return end.reason === Shutdown.reboot ? RunExit.REBOOTED : RunExit.FAILED;
    case "crashed": {
      // crashDomain has logged the reason already; a guest-reported crash has not.
      if (!logged.has(end.text)) err(end.text);
      const hint = abiHint(opts.abi ?? boot.abi ?? DEFAULT_ABI, machine.hv.nowNs(), end.text);
      if (hint !== null) err(hint);
      return RunExit.FAILED;
    }
    case "restart-refused":
    case "idle":
      err(end.text);
      return RunExit.FAILED;
  }
}

/** Guest time within which a crash may be a kernel built for the other interface revision. */
const EARLY_CRASH_NS = 1e9;

/**
 * What to say after a crash early in the run when the interface revision may be the wrong one:
 * a kernel of the other revision crashes at its first hypercalls (start_info and hypercall
 * arguments differ), and its image cannot tell (both revisions' __xen_guest say XEN_VER=3.0).
 * Under the default revision only the tell-tale crash counts (an event delivered before any
 * callback was set): the default's own early crashes are the guest's business.
 */
export function abiHint(abi: string, crashedAtNs: number, reason: string): string | null {
  if (crashedAtNs >= EARLY_CRASH_NS) return null;
  if (abi === DEFAULT_ABI && !/bounce to a handler at EIP 0\b/.test(reason)) return null;
  const other = ABI_NAMES.find((n) => n !== abi);
  return (
    `the guest crashed ${Math.round(crashedAtNs / 1e6)} ms into its run under the ${abi} interface, as a kernel ` +
    `built for the ${other} interface does (its image does not say which): if it is one, run it with --abi ${other}`
  );
}

export function registerRun(program: Command): void {
  program
    .command("run")
    .description("boot a PV guest kernel and show its console")
    .argument(
      "[kernel]",
      "the guest kernel (an ELF with a __xen_guest section) or a domain configuration file; default: the bundled hello guest",
    )
    .argument("[vars...]", "name=value variables for a configuration file, as xm create takes (vmid=1)")
    .option("--memory <MiB>", "the domain's memory in MiB", "32")
    .option("--seconds <N>", "stop after N seconds of guest time")
    .option("--cmdline <text>", "the guest's command line", "")
    .option("--ramdisk <file>", "an initial ramdisk (initrd), given to the guest as its start_info module")
    .option("--no-reboot", "a reboot inside the guest ends the run (exit status 3) instead of restarting it")
    .option("--machine-memory <MiB>", `the machine's memory in MiB (4..${MAX_MACHINE_MIB})`, "128")
    .option(
      "--disk <file:IMAGE,DEV,MODE>",
      "a virtual disk, as a configuration's disk entry (repeatable), e.g. file:root.img,sda1,w",
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option(
      "--vif <settings>",
      'a virtual network interface, as a configuration\'s vif entry (repeatable), e.g. "mac=00:16:3e:00:00:01,bridge=xenbr0"',
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option(
      "--gdb <[host:]port>",
      "serve gdb's remote protocol there and wait for it before the first instruction",
    )
    .option(
      "--gdb-nowait <[host:]port>",
      "serve gdb's remote protocol there; the guest runs until gdb connects",
    )
    .option(
      "--record <file>",
      "log every input (console, Ctrl-]) with its virtual time, the options and disk images (size, SHA-256) it ran with, and the end state's hash",
    )
    .option(
      "--replay <file>",
      "run again with the inputs of a --record log: the same console bytes and end state",
    )
    .option(
      "--abi <revision>",
      `the guest interface revision (${ABI_NAMES.join(", ")}; default ${DEFAULT_ABI}, or the config file's abi)`,
    )
    .action(async (kernel: string | undefined, vars: string[], opts: RunOptions) => {
      process.exitCode = await runKernel(kernel ?? BUNDLED_GUEST, { ...opts, vars });
    });
}
