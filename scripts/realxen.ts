/**
 * The oracle (issue 17): boots one of our guests as dom0 on real Xen of March 2005 (16d8409f)
 * under QEMU's TCG, and returns or prints its console. The hypervisor is built outside the
 * repository (docs/real-guests.md, "Real Xen as an oracle") and named by TSXEN_REALXEN or
 * --xen; QEMU (qemu-system-i386) is needed only here, never by npm test.
 *
 *   npm run realxen -- guests/build/conf_sched_op.elf [--cmdline "self=0"] [--timeout 60]
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

export interface RealXenRun {
  /** Everything on the serial line: Xen's boot log, then the guest's console. */
  text: string;
  /** What the guest printed: the text after Xen hands the serial line to dom0. */
  guest: string;
  /** How the run ended: dom0 powered off, shut down or crashed Xen, or the time ran out. */
  end: "halted" | "shutdown" | "xen-died" | "timeout";
}

/** Xen's last words: dom0 halted (poweroff), any other shutdown reason, or a panic/BUG. */
const ENDINGS: Array<[RegExp, RealXenRun["end"]]> = [
  [/\(XEN\) Domain 0 halted/, "halted"],
  [/\(XEN\) Domain 0 shutdown/, "shutdown"],
  [/is toast\.\.\.|BUG at |\(XEN\) PANIC/, "xen-died"],
];
const HANDOVER = /\*\*\* Serial input -> DOM0[^\n]*\n/;

export function realXenPath(given?: string): string {
  const path = given ?? process.env.TSXEN_REALXEN;
  if (!path)
    throw new Error("name the real Xen binary: TSXEN_REALXEN=/path/to/xen or --xen (docs/real-guests.md)");
  if (!existsSync(path)) throw new Error(`no real Xen binary at ${path}`);
  return path;
}

/**
 * Runs guest (an ELF) as dom0 on the Xen binary xen (the uncompressed multiboot ELF, not
 * xen.gz): QEMU's multiboot loader, one CPU, TCG, serial console captured. QEMU is killed at
 * Xen's last words (it halts rather than powering off) or after timeoutMs.
 */
export function runOnRealXen(
  xen: string,
  guest: string,
  opts: { cmdline?: string; timeoutMs?: number; memMiB?: number } = {},
): Promise<RealXenRun> {
  if (guest.includes(",") || (opts.cmdline ?? "").includes(","))
    throw new Error(
      "QEMU's -initrd separates modules with commas: none allowed in the guest path or cmdline",
    );
  const module = opts.cmdline ? `${guest} ${opts.cmdline}` : guest;
  const args = [
    ...["-accel", "tcg", "-m", String(opts.memMiB ?? 128), "-smp", "1"],
    ...["-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot", "-net", "none"],
    ...["-kernel", xen, "-append", "com1=115200,8n1 console=com1 dom0_mem=16384 noreboot"],
    ...["-initrd", module],
  ];
  return new Promise((resolve, reject) => {
    const qemu = spawn("qemu-system-i386", args, { stdio: ["ignore", "pipe", "pipe"] });
    let text = "";
    let end: RealXenRun["end"] = "timeout";
    let stopping: NodeJS.Timeout | null = null;
    const stop = (): void => {
      if (stopping === null) stopping = setTimeout(() => qemu.kill("SIGKILL"), 300);
    };
    const timer = setTimeout(stop, opts.timeoutMs ?? 60_000);
    qemu.stdout.on("data", (b: Buffer) => {
      text += b.toString("latin1");
      if (end !== "timeout") return;
      for (const [re, kind] of ENDINGS) {
        if (re.test(text)) {
          end = kind;
          stop();
          break;
        }
      }
    });
    let stderr = "";
    qemu.stderr.on("data", (b: Buffer) => {
      stderr += b.toString();
    });
    qemu.on("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run qemu-system-i386 (apt-get install qemu-system-x86): ${e.message}`));
    });
    qemu.on("close", (code) => {
      clearTimeout(timer);
      if (stopping) clearTimeout(stopping);
      if (text === "" && code !== 0) return reject(new Error(`qemu-system-i386 failed: ${stderr.trim()}`));
      text = text.replace(/\r\n/g, "\n");
      const m = HANDOVER.exec(text);
      const guestText = m ? text.slice(m.index + m[0].length) : "";
      resolve({ text, guest: guestText, end });
    });
  });
}

async function main(argv: string[]): Promise<void> {
  let xen: string | undefined;
  let cmdline: string | undefined;
  let timeoutMs = 60_000;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--xen") xen = argv[++i];
    else if (a === "--cmdline") cmdline = argv[++i];
    else if (a === "--timeout") timeoutMs = Number(argv[++i]) * 1000;
    else rest.push(a);
  }
  if (rest.length !== 1 || !Number.isFinite(timeoutMs) || timeoutMs <= 0)
    throw new Error("usage: realxen <guest.elf> [--xen path] [--cmdline text] [--timeout seconds]");
  if (!existsSync(rest[0])) throw new Error(`no guest at ${rest[0]}`);
  const run = await runOnRealXen(realXenPath(xen), rest[0], { cmdline, timeoutMs });
  process.stdout.write(run.text);
  process.stdout.write(`\n[realxen: ${run.end}]\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((e: Error) => {
    process.stderr.write(`realxen: ${e.message}\n`);
    process.exit(1);
  });
}
