/**
 * Linux benchmark (issues 13 and 16): boots XenLinux 2.6.11 with the BusyBox userland to its
 * shell prompt in an in-process session like `tsxen run`'s (virtual time, as fast as the CPU
 * allows), types a fixed shell workload, then runs our userland test guests/linux/ltest.c
 * (fork, exec, COW, signals, pipes, mmap, threads, x87 across processes, sleeps) and powers
 * off. Prints wall time to the prompt, of the workload, of ltest and of its x87 check, guest
 * time, guest instructions, hypercalls and guest page faults per wall second.
 * With TSXEN_REALXEN (the real Xen of March 2005, docs/real-guests.md "Real Xen as an oracle")
 * and qemu-system-i386 it then runs the same kernel, initrd and typed lines as dom0 on real Xen
 * under QEMU's TCG and prints both side by side (wall times from the console's lines, and
 * CPU times: tsxen's process and QEMU's, read from /proc at each line).
 * Not a timed test: it prints figures.
 *
 *   TSXEN_XENLINUX=vmlinux TSXEN_XENLINUX_USERLAND=dir TSXEN_XENLINUX_LTEST=ltest \
 *     [TSXEN_REALXEN=xen] npm run bench:linux
 *
 * (docs/real-guests.md builds them.) Profile with `node --cpu-prof dist/bench/linux-bench.js`,
 * or one phase with `--prof-phase NAME FILE` (NAME as printed, e.g. "w: gzip pipeline");
 * `--stop-after NAME` exits at that phase's end (cachegrind: the difference of two lengths).
 * Each phase also prints its exits by kind, the wasm blocks made, the pending blocks'
 * interpreted runs, the run-loop entries and the kept page-crossing instructions' runs.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pendingClock } from "../src/cpu/blocks.js";
import { Exit } from "../src/cpu/regs.js";
import { InterpStats } from "../src/cpu/stats.js";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { LinuxRun, PROMPT, xenLinuxFiles, xenLinuxInitrd } from "../test/helpers/xenlinux.js";
import { schedNs, ThreadCpu } from "./thread-cpu.js";

const TRAP_page_fault = 14;
const SYSCALL = 0x80;
const HYPERCALL = 0x82;

/**
 * The workload: fork/exec of small commands in a loop, a pipe pipeline, a dd to /dev/null, a
 * find over /. Each command is followed by a marker line W-n, its last by BENCH-2 (typed as
 * expressions, so the echo of the typed line does not match), so each is timed on its own.
 */
const COMMANDS: Array<[string, string]> = [
  ["w: fork+exec x100", "i=0; while [ $i -lt 100 ]; do /bin/true; i=$((i+1)); done"],
  ["w: gzip pipeline", "cat /bin/busybox /bin/busybox | gzip -c | gunzip -c | wc -c"],
  ["w: dd 16 MiB", "dd if=/dev/zero of=/dev/null bs=4096 count=4096"],
  ["w: find", "find / -xdev | wc -l"],
];
const WORKLOAD = COMMANDS.map(
  ([, c], i) => `${c}; echo ${i === COMMANDS.length - 1 ? "BENCH-$((1+1))" : `W-$((${i + 1}))`}`,
).join("; ");

interface Counts {
  wallMs: number;
  guestNs: number;
  insns: number;
  hypercalls: number;
  pageFaults: number;
  /** Process CPU time (all threads: V8 compiles on its own), ms. */
  cpuMs: number;
  /** The main thread's CPU time, ms (NaN where /proc does not give it). */
  mainMs: number;
  /** Instructions retired in compiled blocks, code frames written, decode-cache flushes. */
  blockInsns: number;
  /** cpu.run calls; entries from the run loop into regions or standalone blocks; blocks run. */
  runs: number;
  entries: number;
  /** Changes of code page taken inside regions (Cpu.hopFetch). */
  hops: number;
  blocks: number;
  codeWrites: number;
  flushes: number;
  /**
   * int $0x80s (exits, and fast traps delivered inside the run), other exceptions (not #PF,
   * not hypercalls), hypercalls by number.
   */
  syscalls: number;
  otherExc: number;
  byCall: number[];
  /** Blocks and modules the wasm back end made; pending blocks' interpreted runs. */
  wasmBlocks: number;
  wasmModules: number;
  /** Runs of kept page-crossing instructions (Cpu.crossingHits). */
  crossings: number;
  pendingRuns: number;
}

/** The console lines that end each timed phase, in order; the first phase starts at power-on. */
const MARKS: Array<[string, RegExp]> = [
  ["to prompt", new RegExp(PROMPT.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&"))],
  ...COMMANDS.slice(0, -1).map(([name], i): [string, RegExp] => [name, new RegExp(`^W-${i + 1}\\r?$`, "m")]),
  [COMMANDS[COMMANDS.length - 1][0], /^BENCH-2\r?$/m],
  ["ltest, to its x87", /^PASS main-tls-intact\r?$/m],
  ["ltest's x87", /^(PASS|FAIL) x87-across-processes/m],
  ["rest of ltest", /LTEST DONE passed=\d+ failed=\d+/],
];
/** What is typed after each mark (null: nothing). */
const TYPED = [WORKLOAD, ...COMMANDS.slice(1).map(() => null), "ltest", null, null, "poweroff"];
/** The marks' indices of the workload's first and last commands. */
const W_FIRST = 1;
const W_LAST = COMMANDS.length;

/** Wall ms from power-on at which each mark's line appeared, then power-off's. */
type Times = number[];

/** Seconds between consecutive marks. */
function phases(t: Times): number[] {
  return t.map((v, i) => (v - (i === 0 ? 0 : t[i - 1])) / 1000);
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * The main thread's CPU time in ms, from its schedstat's nanoseconds (Linux; NaN elsewhere).
 * What a quiet machine's wall time follows: V8 compiles (TurboFan for JS and for wasm tier-up)
 * on threads of its own, ~a third of the process's CPU in this bench, which a second idle core
 * takes off the wall time but a loaded machine does not, so neither process CPU nor wall under
 * load tells it. (process.cpuUsage, the process's figure, is already in microseconds.)
 */
function mainMs(): number {
  return schedNs(process.pid, process.pid) / 1e6;
}

async function main(): Promise<number> {
  const files = xenLinuxFiles();
  if (typeof files === "string") {
    process.stdout.write(`bench:linux: not run: ${files}\n`);
    return 0;
  }
  const t0 = performance.now();
  const cpu0 = cpuMs();
  const main0 = mainMs();
  const run = new LinuxRun(files);
  const cpu = run.hv.cpu;
  let hypercalls = 0;
  let pageFaults = 0;
  const byCall: number[] = new Array(64).fill(0);
  run.hv.trace = (_v, n) => {
    hypercalls++;
    byCall[n & 63]++;
  };
  let syscalls = 0;
  let otherExc = 0;
  // Every guest exit comes back through cpu.run: the instructions and #PF exits are counted there.
  let insns = 0;
  let runs = 0;
  const inner = cpu.run.bind(cpu);
  cpu.run = (budget: number): Exit => {
    runs++;
    const before = cpu.retiredTotal;
    const e = inner(budget);
    insns += cpu.retiredTotal - before;
    if (e === Exit.Exception) {
      const v = cpu.exitVector;
      if (!cpu.exitSoft && v === TRAP_page_fault) pageFaults++;
      else if (cpu.exitSoft && v === SYSCALL) syscalls++;
      else if (!(cpu.exitSoft && v === HYPERCALL)) otherExc++;
    }
    return e;
  };
  const wasm = cpu.backend === "wasm" ? wasmBackend(cpu) : null;
  const snap = (): Counts => ({
    wallMs: performance.now(),
    guestNs: run.hv.nowNs(),
    insns,
    hypercalls,
    pageFaults,
    cpuMs: cpuMs(),
    mainMs: mainMs(),
    blockInsns: cpu.blockInsnsTotal,
    runs,
    entries: cpu.regionRuns + cpu.blockRuns,
    hops: cpu.regionHops,
    blocks: cpu.regionBlocks + cpu.blockRuns,
    codeWrites: cpu.codeWrites,
    flushes: cpu.dc.flushes,
    syscalls: syscalls + run.hv.fastTrapsInRun,
    otherExc,
    byCall: byCall.slice(),
    wasmBlocks: wasm?.blocks ?? 0,
    wasmModules: wasm?.modules ?? 0,
    crossings: cpu.crossingHits,
    pendingRuns: pendingClock(cpu.dc).runs,
  });
  const start: Counts = {
    ...{ wallMs: t0, guestNs: 0, insns: 0, hypercalls: 0, pageFaults: 0 },
    ...{ cpuMs: cpu0, mainMs: main0, blockInsns: 0, codeWrites: 0, flushes: 0 },
    ...{ runs: 0, entries: 0, hops: 0, blocks: 0, syscalls: 0, otherExc: 0, byCall: byCall.slice() },
    ...{ wasmBlocks: 0, wasmModules: 0, crossings: 0, pendingRuns: pendingClock(cpu.dc).runs },
  };
  // --why: why the workload's interpreted instructions were not in blocks (costs a little).
  const why = process.argv.includes("--why");
  let whyReport: string[] = [];
  const counts: Counts[] = [];
  let at = 0;
  let promptAt = 0;
  let out = "";
  // --prof-phase NAME FILE: a V8 CPU profile of that phase only (names as printed).
  const pp = process.argv.indexOf("--prof-phase");
  const profPhase = pp < 0 ? -1 : MARKS.findIndex((m) => m[0] === process.argv[pp + 1]);
  if (pp >= 0 && profPhase < 0) throw new Error(`--prof-phase: no phase ${process.argv[pp + 1]}`);
  const prof = profPhase < 0 ? null : new Session();
  const post = (m: string, p?: object): Promise<unknown> =>
    new Promise((res, rej) => prof?.post(m, p ?? {}, (e, r) => (e ? rej(e) : res(r))));
  if (prof !== null) {
    prof.connect();
    await post("Profiler.enable");
    await post("Profiler.setSamplingInterval", { interval: 100 });
  }
  // --stop-after NAME: exit at that phase's end (cachegrind: the difference of two lengths).
  const sa = process.argv.indexOf("--stop-after");
  const stopAfter = sa < 0 ? -1 : MARKS.findIndex((m) => m[0] === process.argv[sa + 1]);
  if (sa >= 0 && stopAfter < 0) throw new Error(`--stop-after: no phase ${process.argv[sa + 1]}`);
  for (let i = 0; i < MARKS.length; i++) {
    if (i === profPhase) await post("Profiler.start");
    // ltest's marks in short slices of guest time (seen within 1 ms of guest time of their line).
    // The workload's commands' marks in 5 ms.
    at = run.until(MARKS[i][1], at, 300, i > W_LAST ? 1e6 : i >= W_FIRST ? 5e6 : 50e6);
    counts.push(snap());
    if (i === profPhase) {
      const r = (await post("Profiler.stop")) as { profile: object };
      writeFileSync(process.argv[pp + 2], JSON.stringify(r.profile));
    }
    if (i === stopAfter) {
      process.stdout.write(`stopped after ${MARKS[i][0]}: ${insns} instructions\n`);
      // Each phase's CPU time so far (CPU-time comparisons of two trees, alternated).
      for (let j = 0; j <= i; j++) {
        const [a, b] = [j === 0 ? start : counts[j - 1], counts[j]];
        const cpuS = ((b.cpuMs - a.cpuMs) / 1000).toFixed(3);
        process.stdout.write(
          `${MARKS[j][0].padEnd(18)} CPU ${cpuS} s, main ${((b.mainMs - a.mainMs) / 1000).toFixed(3)} s\n`,
        );
      }
      return 0;
    }
    if (i === 0) promptAt = at;
    if (i === W_LAST) out = run.console.slice(promptAt, at);
    if (why && i === 0) cpu.stats = new InterpStats();
    if (why && i === W_LAST) whyReport = cpu.stats?.report() ?? [];
    const typed = TYPED[i];
    if (typed !== null) run.type(typed);
  }
  const end = run.session.runUntil(run.hv.nowNs() + 30e9);
  counts.push(snap());
  const ltest = run.console.slice(run.console.indexOf("LTEST START"), at);

  const line = (what: string, a: Counts, b: Counts): string => {
    const s = (b.wallMs - a.wallMs) / 1000;
    const per = (n: number) => `${(n / s / 1e3).toFixed(1)}k/s`;
    return [
      `${what.padEnd(18)} wall ${s.toFixed(2).padStart(7)} s`,
      `CPU ${((b.cpuMs - a.cpuMs) / 1000).toFixed(2).padStart(6)} s (main thread ${((b.mainMs - a.mainMs) / 1000).toFixed(2)})`,
      `guest ${((b.guestNs - a.guestNs) / 1e9).toFixed(3).padStart(7)} s`,
      `${((b.insns - a.insns) / 1e6).toFixed(1).padStart(6)} M insns (${((b.insns - a.insns) / s / 1e6).toFixed(1)} MIPS)`,
      `hypercalls ${b.hypercalls - a.hypercalls} (${per(b.hypercalls - a.hypercalls)})`,
      `page faults ${b.pageFaults - a.pageFaults} (${per(b.pageFaults - a.pageFaults)})`,
      `in blocks ${((100 * (b.blockInsns - a.blockInsns)) / Math.max(b.insns - a.insns, 1)).toFixed(1)} %`,
      `code writes ${b.codeWrites - a.codeWrites}, flushes ${b.flushes - a.flushes}`,
      `instructions a run() ${((b.insns - a.insns) / Math.max(b.runs - a.runs, 1)).toFixed(0)},` +
        ` a run-loop entry ${((b.blockInsns - a.blockInsns) / Math.max(b.entries - a.entries, 1)).toFixed(1)},` +
        ` a page crossing linked ${((b.blockInsns - a.blockInsns) / Math.max(b.hops - a.hops, 1)).toFixed(1)},` +
        ` a block ${((b.blockInsns - a.blockInsns) / Math.max(b.blocks - a.blocks, 1)).toFixed(1)}`,
      `syscalls ${b.syscalls - a.syscalls}, other exceptions ${b.otherExc - a.otherExc}`,
      `wasm blocks made ${b.wasmBlocks - a.wasmBlocks} in ${b.wasmModules - a.wasmModules} modules,` +
        ` pending runs ${b.pendingRuns - a.pendingRuns}, run-loop entries ${b.entries - a.entries},` +
        ` page-crossing instructions kept ${b.crossings - a.crossings}`,
      `hypercalls by number {${b.byCall
        .map((n, k) => [k, n - a.byCall[k]])
        .filter(([, n]) => n > 0)
        .map(([k, n]) => `${k}:${n}`)
        .join(" ")}}`,
    ].join(", ");
  };
  process.stdout.write("XenLinux 2.6.11, BusyBox initrd, 64 MiB, virtual time\n");
  process.stdout.write(
    wasm === null
      ? "compiled blocks: JS\n"
      : `compiled blocks: wasm, ${wasm.blocks} blocks in ${wasm.modules} modules, ${wasm.runs} wasm block runs\n`,
  );
  const names = [...MARKS.map((m) => m[0]), "poweroff"];
  for (let i = 0; i < counts.length; i++)
    process.stdout.write(`${line(names[i], i === 0 ? start : counts[i - 1], counts[i])}\n`);
  process.stdout.write(`${line("workload", counts[W_FIRST - 1], counts[W_LAST])}\n`);
  process.stdout.write(`${line("power-on to off", start, counts[counts.length - 1])}\n`);
  process.stdout.write(`session end: ${end === null ? "none within 30 s of guest time" : end.kind}\n`);
  process.stdout.write(`workload output:\n${out.replace(/\r/g, "").trim()}\n`);
  process.stdout.write(`ltest: ${ltest.match(/LTEST DONE.*/)?.[0] ?? "no result"}\n`);
  if (why) process.stdout.write(`the workload's interpreted instructions, why:\n${whyReport.join("\n")}\n`);

  const xen = process.env.TSXEN_REALXEN;
  if (!xen) {
    process.stdout.write("real Xen under QEMU: not run (set TSXEN_REALXEN, docs/real-guests.md)\n");
    return 0;
  }
  const tsxen = counts.map((c) => c.wallMs - t0);
  const tsxenCpu = counts.map((c) => c.cpuMs - cpu0);
  const real = await realXen(xen, files);
  if (typeof real === "string") {
    process.stdout.write(`real Xen under QEMU: not run: ${real}\n`);
    return 0;
  }
  // CPU time beside wall: on a loaded machine wall time is mostly waiting for a core, and
  // each side waits differently (tsxen one thread and V8's compiles, QEMU its TCG thread).
  process.stdout.write(
    "\nside by side, s (real Xen of March 2005 as dom0 under QEMU TCG, one CPU; CPU: all threads," +
      " tsxen's by process.cpuUsage, QEMU's by its threads' schedstat nanoseconds):\n",
  );
  process.stdout.write(
    `${"".padEnd(18)} ${"tsxen".padStart(8)} ${"real Xen".padStart(9)} ${"CPU tsxen".padStart(12)} ${"real Xen".padStart(12)}\n`,
  );
  const [a, b, ac, bc] = [phases(tsxen), phases(real.wall), phases(tsxenCpu), phases(real.cpu)];
  // Wall to the 10 ms, CPU to the microsecond (a short phase is a few ms of QEMU's CPU).
  const col = (v: number | undefined, w: number, d = 2) => (v ?? Number.NaN).toFixed(d).padStart(w);
  const row = (name: string, v: Array<number | undefined>) =>
    process.stdout.write(
      `${name.padEnd(18)} ${col(v[0], 8)} ${col(v[1], 9)} ${col(v[2], 12, 6)} ${col(v[3], 12, 6)}\n`,
    );
  for (let i = 0; i < names.length; i++) row(names[i], [a[i], b[i], ac[i], bc[i]]);
  const total = (t: Times) => t[t.length - 1] / 1000;
  const work = (t: Times) => (t[W_LAST] - t[W_FIRST - 1]) / 1000;
  const all = [tsxen, real.wall, tsxenCpu, real.cpu];
  row("workload", all.map(work));
  row("power-on to off", all.map(total));
  process.stdout.write(
    `real Xen's CPU power-on to off by /proc/PID/stat's 10 ms ticks (the old reader): ${total(real.ticks).toFixed(2)} s\n`,
  );
  return 0;
}

/**
 * QEMU's CPU time so far (user and system, all its threads, those ended too), ms, from
 * /proc/PID/stat's 10 ms ticks; NaN where /proc lacks it. The side-by-side table takes the
 * threads' nanoseconds (ThreadCpu); this is printed beside their total as a check.
 */
function qemuTicksMs(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th,
    // in USER_HZ ticks (100 a second on Linux, whatever the kernel's own HZ).
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return Number.NaN;
  }
}

/**
 * The same kernel, initrd and typed lines as dom0 on real Xen under QEMU (TCG, one CPU): the
 * wall times of the marks from QEMU's start and its CPU time at each, or why it could not
 * run. The serial line is dom0's console (xencons=ttyS); Xen halts the machine at dom0's
 * power-off.
 */
function realXen(
  xen: string,
  files: Exclude<ReturnType<typeof xenLinuxFiles>, string>,
): Promise<{ wall: Times; cpu: Times; ticks: Times } | string> {
  if (!existsSync(xen)) return Promise.resolve(`TSXEN_REALXEN=${xen} does not exist`);
  const dir = mkdtempSync(join(tmpdir(), "tsxen-linuxbench-"));
  const initrd = join(dir, "initrd.cpio");
  writeFileSync(initrd, xenLinuxInitrd(files));
  if (`${files.kernel}${initrd}`.includes(","))
    return Promise.resolve("QEMU's -initrd cannot take a path with a comma");
  const args = [
    ...["-accel", "tcg", "-m", "192", "-smp", "1", "-display", "none", "-monitor", "none"],
    ...["-serial", "stdio", "-no-reboot", "-net", "none", "-kernel", xen],
    ...["-append", "com1=115200,8n1 console=com1 dom0_mem=65536 noreboot"],
    ...["-initrd", `${files.kernel} xencons=ttyS,${initrd}`],
  ];
  return new Promise((resolve) => {
    const t0 = performance.now();
    const qemu = spawn("qemu-system-i386", args, { stdio: ["pipe", "pipe", "ignore"] });
    const times: Times = [];
    const cpu: Times = [];
    const ticks: Times = [];
    const qcpu = new ThreadCpu(qemu.pid ?? -1);
    let text = "";
    let from = 0;
    const timer = setTimeout(() => qemu.kill("SIGKILL"), 300_000);
    // What is left to type, and the console length at which the last chunk has echoed.
    let pending = "";
    let echoAt = 0;
    qemu.stdout.on("data", (b: Buffer) => {
      text += b.toString("latin1");
      // Several marks may come in one chunk (the workload's commands end close together).
      for (let i = times.length; i < MARKS.length; i = times.length) {
        const m = MARKS[i][1].exec(text.slice(from));
        if (m === null) break;
        times.push(performance.now() - t0);
        cpu.push(qcpu.ms());
        ticks.push(qemuTicksMs(qemu.pid));
        from += m.index + m[0].length;
        // Xen hands the serial line's input to dom0 as typed; the shell wants a carriage return.
        const typed = TYPED[i];
        if (typed !== null) pending = `${typed}\r`;
        echoAt = text.length;
      }
      if (times.length === MARKS.length && /\(XEN\) Domain 0 (halted|shutdown)/.test(text.slice(from))) {
        times.push(performance.now() - t0);
        cpu.push(qcpu.ms());
        ticks.push(qemuTicksMs(qemu.pid));
        qemu.kill("SIGKILL");
      }
      if (pending !== "" && text.length >= echoAt) {
        // Typed in chunks, each once the previous one has echoed: a whole line at once
        // overflows the emulated 16550's receive FIFO and the shell never sees its end.
        const chunk = pending.slice(0, 8);
        pending = pending.slice(8);
        echoAt = text.length + chunk.length;
        qemu.stdin.write(chunk);
      }
    });
    qemu.on("error", (e) => {
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
      resolve(`cannot run qemu-system-i386: ${e.message}`);
    });
    qemu.on("close", () => {
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
      if (times.length === MARKS.length + 1) resolve({ wall: times, cpu, ticks });
      else
        resolve(
          `stopped after ${times.length} of ${MARKS.length + 1} marks; console tail:\n${text.slice(-1500)}`,
        );
    });
  });
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: Error) => {
    process.stderr.write(`bench:linux: ${e.stack ?? e.message}\n`);
    process.exitCode = 1;
  },
);
