/**
 * `tsxen run <kernel.elf>`: one process, no daemon. Builds the machine and the domain, runs
 * it with its console on stdout until it shuts down or N seconds of guest time have passed.
 * The guest's console bytes go to stdout unaltered; tsxen's own messages go to stderr.
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { Shutdown } from "../public/xen.js";
import { launchDomain } from "../tools/launch.js";
import { Hypervisor } from "../xen/hypervisor.js";

/** The bundled demo guest (guests/hello.elf, rebuilt and compared by npm test). */
export const BUNDLED_GUEST = fileURLToPath(new URL("../../../guests/hello.elf", import.meta.url));

export interface RunOptions {
  memory: string;
  seconds?: string;
  cmdline: string;
  machineMemory: string;
}

const SHUTDOWN_NAMES: Record<number, string> = {
  [Shutdown.poweroff]: "poweroff",
  [Shutdown.reboot]: "reboot",
  [Shutdown.suspend]: "suspend",
  [Shutdown.crash]: "crash",
};

function wholeNumber(text: string, what: string): number {
  if (!/^\d+$/.test(text)) throw new Error(`${what} must be a whole number, not "${text}"`);
  return Number(text);
}

/** Runs a kernel; returns the process exit status. */
export function runKernel(kernelPath: string, opts: RunOptions): number {
  const err = (m: string): void => void process.stderr.write(`tsxen: ${m}\n`);
  let image: Uint8Array;
  try {
    image = readFileSync(kernelPath);
  } catch (e) {
    err(`cannot read kernel ${kernelPath}: ${(e as Error).message}`);
    return 2;
  }
  try {
    const memoryMiB = wholeNumber(opts.memory, "--memory");
    const seconds = opts.seconds === undefined ? undefined : wholeNumber(opts.seconds, "--seconds");
    const hv = new Hypervisor({
      memoryMiB: wholeNumber(opts.machineMemory, "--machine-memory"),
      onConsole: (_d, bytes) => void process.stdout.write(bytes),
      onLog: (m) => err(m),
    });
    const { domain } = launchDomain(hv, { name: basename(kernelPath), image, memoryMiB, cmdline: opts.cmdline });
    const r = hv.run(seconds === undefined ? Number.POSITIVE_INFINITY : seconds * 1e9);
    switch (r.kind) {
      case "shutdown":
        if (r.reason === Shutdown.poweroff) return 0;
        err(`domain ${domain.id} shut down: ${SHUTDOWN_NAMES[r.reason] ?? `reason ${r.reason}`}`);
        return 1;
      case "crashed":
        err(`domain ${r.domain.id} crashed: ${r.why}`);
        return 1;
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
    .argument("[kernel]", "the guest kernel (an ELF with a __xen_guest section); default: the bundled hello guest")
    .option("--memory <MiB>", "the domain's memory in MiB", "32")
    .option("--seconds <N>", "stop after N seconds of guest time")
    .option("--cmdline <text>", "the guest's command line", "")
    .option("--machine-memory <MiB>", "the machine's memory in MiB", "128")
    .action((kernel: string | undefined, opts: RunOptions) => {
      process.exitCode = runKernel(kernel ?? BUNDLED_GUEST, opts);
    });
}
