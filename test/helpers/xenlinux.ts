/**
 * XenLinux 2.6.11 for the gated real-guests suite and bench/linux-bench.ts: the environment
 * that names the kernel, the BusyBox userland and our test program (docs/real-guests.md), the
 * initrd packed from them on the fly, and a Linux booted in-process to its shell prompt.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  type CpioEntry,
  entriesFromDirectory,
  packCpio,
  parseDevSpec,
  S_IFREG,
} from "../../scripts/mkinitrd.js";
import { GuestSession, type SessionOptions } from "../../src/tools/session.js";
import { Hypervisor } from "../../src/xen/hypervisor.js";

/** TSXEN_XENLINUX: vmlinux; TSXEN_XENLINUX_USERLAND: the BusyBox directory with /init;
 * TSXEN_XENLINUX_LTEST: guests/linux/ltest.c built static with musl. */
export const XENLINUX_ENV = ["TSXEN_XENLINUX", "TSXEN_XENLINUX_USERLAND", "TSXEN_XENLINUX_LTEST"] as const;

export interface XenLinuxFiles {
  kernel: string;
  userland: string;
  ltest: string;
}

/** The files named by the environment, or why they cannot be used. */
export function xenLinuxFiles(): XenLinuxFiles | string {
  const [kernel, userland, ltest] = XENLINUX_ENV.map((k) => process.env[k] ?? "");
  for (const [k, v] of XENLINUX_ENV.map((k, i) => [k, [kernel, userland, ltest][i]] as const)) {
    if (v === "")
      return `set ${XENLINUX_ENV.join(", ")} (vmlinux, BusyBox directory, ltest binary; recipe: docs/real-guests.md)`;
    if (!existsSync(v)) return `${k}=${v} does not exist`;
  }
  if (!existsSync(join(userland, "init"))) return `TSXEN_XENLINUX_USERLAND=${userland} has no /init`;
  return { kernel, userland, ltest };
}

/** The device nodes of docs/real-guests.md's initrd recipe. */
const DEVS = [
  "/dev/console,c,5,1",
  "/dev/tty,c,5,0,0666",
  "/dev/null,c,1,3,0666",
  "/dev/zero,c,1,5,0666",
  "/dev/tty1,c,4,1",
  "/dev/ttyS0,c,4,64",
];

/** The userland directory plus /bin/ltest (and /sbin/halt) as an uncompressed initrd (no gunzip in the guest). */
export function xenLinuxInitrd(files: XenLinuxFiles): Uint8Array {
  const mtime = 1111111111;
  const nodes = DEVS.map((d) => parseDevSpec(d, mtime));
  const extra: CpioEntry = {
    name: "bin/ltest",
    mode: S_IFREG | 0o755,
    uid: 0,
    gid: 0,
    mtime,
    data: readFileSync(files.ltest),
  };
  // XenLinux's shutdown handler runs `/sbin/halt -p` (sysvinit's power-off flag); BusyBox's
  // halt has no -p and would refuse, so xm shutdown would do nothing.
  const halt: CpioEntry = {
    name: "sbin/halt",
    mode: S_IFREG | 0o755,
    uid: 0,
    gid: 0,
    mtime,
    data: Buffer.from('#!/bin/sh\n[ "$1" = -p ] && exec poweroff\nexec busybox halt "$@"\n'),
  };
  const replaced = new Set([...nodes.map((n) => n.name), extra.name, halt.name]);
  const entries = entriesFromDirectory(files.userland, { mtime }).filter((e) => !replaced.has(e.name));
  if (!statSync(files.ltest).isFile()) throw new Error(`${files.ltest} is not a file`);
  return packCpio([...entries, extra, halt, ...nodes]);
}

/** The shell's prompt as the userland's /etc/profile sets it (PS1="\h:\w# "). */
export const PROMPT = "tsxen:/# ";

/**
 * Linux in a machine of its own under virtual time, its console collected. `until` runs it
 * until the console (from `from`) matches, or guest time runs out.
 */
export class LinuxRun {
  readonly hv: Hypervisor;
  readonly session: GuestSession;
  private chunks: Buffer[] = [];
  private text = "";
  constructor(
    files: XenLinuxFiles,
    opts: {
      memoryMiB?: number;
      /** null: none (the root is on a disk). */
      initrd?: Uint8Array | null;
      cmdline?: string;
      /** Virtual disks and vifs (sessionDevices), attached to each build. */
      devices?: (hv: Hypervisor) => SessionOptions["devices"];
    } = {},
  ) {
    const onConsole = (b: Uint8Array): void => void this.chunks.push(Buffer.from(b));
    this.hv = new Hypervisor({ memoryMiB: 256, onConsole: (_d, b) => onConsole(b), onLog: () => {} });
    this.session = new GuestSession(this.hv, {
      name: "linux",
      image: readFileSync(files.kernel),
      module: opts.initrd === null ? undefined : (opts.initrd ?? xenLinuxInitrd(files)),
      devices: opts.devices?.(this.hv),
      memoryMiB: opts.memoryMiB ?? 64,
      cmdline: opts.cmdline ?? "",
      onReboot: "destroy",
      onConsole,
      onNote: () => {},
    });
  }

  /** Everything the console has printed. */
  get console(): string {
    if (this.chunks.length > 0) {
      this.text += Buffer.concat(this.chunks).toString("latin1");
      this.chunks = [];
    }
    return this.text;
  }

  /** Types a line into the shell. */
  type(line: string): void {
    this.session.input(Buffer.from(`${line}\n`, "latin1"));
  }

  /**
   * Runs until the console, from offset `from`, matches `re` (returns the match's end offset),
   * or until `seconds` more guest seconds have passed or the session ended (throws, with the
   * console's tail). The console is looked at every sliceNs of guest time.
   */
  until(re: RegExp | string, from: number, seconds: number, sliceNs = 50e6): number {
    const limit = this.hv.nowNs() + seconds * 1e9;
    for (;;) {
      const out = this.console;
      const tail = out.slice(from);
      const m = typeof re === "string" ? tail.indexOf(re) : tail.search(re);
      if (m >= 0) {
        const len = typeof re === "string" ? re.length : (tail.slice(m).match(re)?.[0].length ?? 0);
        return from + m + len;
      }
      if (this.hv.nowNs() >= limit)
        throw new Error(`no ${re} within ${seconds} s; console:\n${out.slice(-3000)}`);
      const end = this.session.runUntil(Math.min(limit, this.hv.nowNs() + sliceNs));
      if (end !== null) throw new Error(`${end.text}; console:\n${this.console.slice(-3000)}`);
    }
  }
}
