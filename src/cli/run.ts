/**
 * `tsxen run <kernel.elf>`: one process, no daemon. Builds the machine and the domain, runs
 * it with its console on stdout until it shuts down or N seconds of guest time have passed.
 * The guest's console bytes go to stdout unaltered; tsxen's own messages go to stderr.
 */
import { readFileSync } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import type { Command } from "commander";
import { BUNDLED_GUEST } from "../daemon/web-files.js";
import { SHUTDOWN_NAMES, Shutdown } from "../public/xen.js";
import { looksLikeConfig, parseDomainConfig } from "../tools/config.js";
import { ConsoleFeed } from "../tools/console_feed.js";
import { launchDomain } from "../tools/launch.js";
import { ABI_NAMES, type AbiName, abiByName, DEFAULT_ABI } from "../xen/abi.js";
import { Hypervisor, type RunResult } from "../xen/hypervisor.js";

export interface RunOptions {
  memory: string;
  seconds?: string;
  cmdline: string;
  machineMemory: string;
  /** Guest interface revision: 2005-03 (default) or 2005-07. */
  abi?: string;
}

function wholeNumber(text: string, what: string): number {
  if (!/^\d+$/.test(text)) throw new Error(`${what} must be a whole number, not "${text}"`);
  return Number(text);
}

/** Guest time run between looks at stdin (the run loop is synchronous). */
const SLICE_NS = 10e6;

/**
 * Feeds the process's stdin into the console input ring (CONSOLEIO_read) through a
 * ConsoleFeed. Returns its pump and a function to stop.
 */
function feedStdin(hv: Hypervisor): { pump: () => void; stop: () => void } {
  const feed = new ConsoleFeed(hv);
  const stdin = process.stdin;
  const onData = (b: Buffer): void => feed.push(b);
  stdin.on("data", onData);
  stdin.on("error", () => {});
  return {
    pump: () => feed.pump(),
    stop: () => {
      stdin.off("data", onData);
      stdin.pause();
      stdin.destroy();
    },
  };
}

/** Runs a kernel; returns the process exit status. */
export async function runKernel(kernelPath: string, opts: RunOptions): Promise<number> {
  const err = (m: string): void => void process.stderr.write(`tsxen: ${m}\n`);
  let image: Uint8Array;
  try {
    image = readFileSync(kernelPath);
  } catch (e) {
    err(`cannot read kernel ${kernelPath}: ${(e as Error).message}`);
    return 2;
  }
  let name = basename(kernelPath);
  let memoryFromConfig: number | undefined;
  let cmdline = opts.cmdline;
  let configAbi: string | undefined;
  if (looksLikeConfig(image)) {
    // A domain configuration file (xm's syntax): boot the kernel it names, with its settings.
    try {
      const config = parseDomainConfig(kernelPath, Buffer.from(image).toString("utf8"));
      for (const w of config.warnings) err(`warning: ${w}`);
      const path = resolve(dirname(kernelPath), config.kernel);
      image = readFileSync(path);
      name = config.name;
      memoryFromConfig = config.memoryMiB;
      if (cmdline === "") cmdline = config.cmdline;
      configAbi = config.abi;
    } catch (e) {
      err((e as Error).message);
      return 2;
    }
  }
  try {
    const memoryMiB = memoryFromConfig ?? wholeNumber(opts.memory, "--memory");
    const seconds = opts.seconds === undefined ? undefined : wholeNumber(opts.seconds, "--seconds");
    const abi = opts.abi ?? configAbi ?? DEFAULT_ABI;
    if (abiByName(abi) === null)
      throw new Error(`--abi must be one of ${ABI_NAMES.join(", ")}, not "${abi}"`);
    const logged = new Set<string>();
    const hv = new Hypervisor({
      memoryMiB: wholeNumber(opts.machineMemory, "--machine-memory"),
      onConsole: (_d, bytes) => void process.stdout.write(bytes),
      onLog: (m) => {
        logged.add(m);
        err(m);
      },
    });
    const { domain } = launchDomain(hv, {
      name,
      image,
      memoryMiB,
      cmdline,
      abi: abi as AbiName,
    });
    const limitNs = seconds === undefined ? Number.POSITIVE_INFINITY : seconds * 1e9;
    // Run in slices of guest time, letting stdin's data events in between.
    const input = feedStdin(hv);
    let r: RunResult;
    try {
      for (let until = SLICE_NS; ; until += SLICE_NS) {
        input.pump();
        r = hv.run(Math.min(until, limitNs));
        if (r.kind !== "time-limit" || until >= limitNs) break;
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      input.stop();
    }
    switch (r.kind) {
      case "shutdown":
        if (r.reason === Shutdown.poweroff) return 0;
        err(`domain ${domain.id} shut down: ${SHUTDOWN_NAMES[r.reason] ?? `reason ${r.reason}`}`);
        return 1;
      case "crashed": {
        // crashDomain has logged the reason already; a guest-reported crash has not.
        const line = `domain ${r.domain.id} (${r.domain.name}) crashed: ${r.why}`;
        if (!logged.has(line)) err(line);
        return 1;
      }
      case "time-limit":
        return 0;
      case "idle":
        err(`stopped: ${r.why}`);
        return 1;
    }
  } catch (e) {
    err((e as Error).message);
    return 2;
  }
}

export function registerRun(program: Command): void {
  program
    .command("run")
    .description("boot a PV guest kernel and show its console")
    .argument(
      "[kernel]",
      "the guest kernel (an ELF with a __xen_guest section) or a domain configuration file; default: the bundled hello guest",
    )
    .option("--memory <MiB>", "the domain's memory in MiB", "32")
    .option("--seconds <N>", "stop after N seconds of guest time")
    .option("--cmdline <text>", "the guest's command line", "")
    .option("--machine-memory <MiB>", "the machine's memory in MiB", "128")
    .option(
      "--abi <revision>",
      `the guest interface revision (${ABI_NAMES.join(", ")}; default ${DEFAULT_ABI}, or the config file's abi)`,
    )
    .action(async (kernel: string | undefined, opts: RunOptions) => {
      process.exitCode = await runKernel(kernel ?? BUNDLED_GUEST, opts);
    });
}
