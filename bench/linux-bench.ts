/**
 * Linux benchmark (issue 13): boots XenLinux 2.6.11 with the BusyBox userland to its shell
 * prompt in an in-process session like `tsxen run`'s (virtual time, as fast as the CPU
 * allows), then types a fixed shell workload. Prints wall time to the prompt and of the
 * workload, guest time, guest instructions, hypercalls and guest page faults per wall second.
 * Not a timed test: it prints figures.
 *
 *   TSXEN_XENLINUX=vmlinux TSXEN_XENLINUX_USERLAND=dir TSXEN_XENLINUX_LTEST=ltest npm run bench:linux
 *
 * (docs/real-guests.md builds the three.) Profile with
 * `node --cpu-prof dist/bench/linux-bench.js`.
 */
import { Exit } from "../src/cpu/regs.js";
import { LinuxRun, PROMPT, xenLinuxFiles } from "../test/helpers/xenlinux.js";

const TRAP_page_fault = 14;

/**
 * The workload: fork/exec of small commands in a loop, a pipe pipeline, a dd to /dev/null, a
 * find over /. Its last line prints BENCH-2 (typed as an expression, so the echo of the typed
 * line does not match).
 */
const WORKLOAD = [
  "i=0; while [ $i -lt 100 ]; do /bin/true; i=$((i+1)); done",
  "cat /bin/busybox /bin/busybox | gzip -c | gunzip -c | wc -c",
  "dd if=/dev/zero of=/dev/null bs=4096 count=4096",
  "find / -xdev | wc -l",
  "echo BENCH-$((1+1))",
].join("; ");

interface Counts {
  wallMs: number;
  guestNs: number;
  insns: number;
  hypercalls: number;
  pageFaults: number;
}

function main(): number {
  const files = xenLinuxFiles();
  if (typeof files === "string") {
    process.stdout.write(`bench:linux: not run: ${files}\n`);
    return 0;
  }
  const t0 = performance.now();
  const run = new LinuxRun(files);
  const cpu = run.hv.cpu;
  let hypercalls = 0;
  let pageFaults = 0;
  run.hv.trace = () => void hypercalls++;
  // Every guest exit comes back through cpu.run: the instructions and #PF exits are counted there.
  let insns = 0;
  const inner = cpu.run.bind(cpu);
  cpu.run = (budget: number): Exit => {
    const before = cpu.retired;
    const e = inner(budget);
    insns += cpu.retired - before;
    if (e === Exit.Exception && !cpu.exitSoft && cpu.exitVector === TRAP_page_fault) pageFaults++;
    return e;
  };
  const snap = (): Counts => ({
    wallMs: performance.now(),
    guestNs: run.hv.nowNs(),
    insns,
    hypercalls,
    pageFaults,
  });
  const start: Counts = { wallMs: t0, guestNs: 0, insns: 0, hypercalls: 0, pageFaults: 0 };
  const at = run.until(PROMPT, 0, 120);
  const prompt = snap();
  run.type(WORKLOAD);
  const done = run.until(/^BENCH-2\r?$/m, at, 300);
  const end = snap();
  const out = run.console.slice(at, done);

  const line = (what: string, a: Counts, b: Counts): string => {
    const s = (b.wallMs - a.wallMs) / 1000;
    const per = (n: number) => `${(n / s / 1e3).toFixed(1)}k/s`;
    return [
      `${what.padEnd(10)} wall ${s.toFixed(2).padStart(7)} s`,
      `guest ${((b.guestNs - a.guestNs) / 1e9).toFixed(2).padStart(6)} s`,
      `${((b.insns - a.insns) / 1e6).toFixed(0).padStart(6)} M insns (${((b.insns - a.insns) / s / 1e6).toFixed(1)} MIPS)`,
      `hypercalls ${b.hypercalls - a.hypercalls} (${per(b.hypercalls - a.hypercalls)})`,
      `page faults ${b.pageFaults - a.pageFaults} (${per(b.pageFaults - a.pageFaults)})`,
    ].join(", ");
  };
  process.stdout.write("XenLinux 2.6.11, BusyBox initrd, 64 MiB, virtual time\n");
  process.stdout.write(`${line("to prompt", start, prompt)}\n`);
  process.stdout.write(`${line("workload", prompt, end)}\n`);
  process.stdout.write(`workload output:\n${out.replace(/\r/g, "").trim()}\n`);
  return 0;
}

process.exitCode = main();
