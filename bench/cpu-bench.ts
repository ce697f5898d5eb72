/**
 * CPU benchmark: runs a freestanding C workload (bench/workload/) on the bare tsxen CPU and
 * the same C natively on the host, checks that both produce the same checksum, and prints
 * instructions retired, time, MIPS and the slowdown of the emulated run.
 *
 *   npm run bench:cpu [-- --iterations N] [-- --native-repeats N] [-- --max-seconds S]
 *
 * Exit status: 0 when the checksums match, 1 on a checksum mismatch, 2 when the workload
 * could not be built or the CPU stopped on anything other than the final `hlt`.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Cpu } from "../src/cpu/cpu.js";
import { CS, EAX, EBX, ECX, ESI, ESP, Exit } from "../src/cpu/regs.js";

const DEFAULT_ITERATIONS = 1000;
const DEFAULT_SEED = 0x2545f491;
/** bench_result + 4 holds this once start32.S has stored the checksum. */
const BENCH_DONE = 0x600dd0de;
const MEM_BYTES = 64 << 20;
const RUN_SLICE = 10_000_000;

const VECTOR_NAMES: Record<number, string> = {
  0: "#DE divide error",
  1: "#DB debug",
  2: "NMI",
  3: "#BP breakpoint",
  4: "#OF overflow",
  5: "#BR bound range",
  6: "#UD invalid opcode",
  7: "#NM device not available",
  8: "#DF double fault",
  10: "#TS invalid TSS",
  11: "#NP segment not present",
  12: "#SS stack fault",
  13: "#GP general protection",
  14: "#PF page fault",
  16: "#MF x87 error",
  17: "#AC alignment check",
};

interface Options {
  iterations: number;
  /** Iterations of a warm-up run before the measured one (0: none). */
  warmup: number;
  seed: number;
  nativeRepeats: number;
  maxSeconds: number;
  micro: boolean;
}

function usage(): string {
  return [
    "usage: node dist/bench/cpu-bench.js [options]",
    `  --iterations N      iterations of the workload's kernel mix (default ${DEFAULT_ITERATIONS})`,
    "  --warmup N          iterations of a warm-up run before the measured one (default 200)",
    "  --native-repeats N  timed native runs; the median is reported (default 10)",
    "  --max-seconds S     give up on the emulated run after S seconds of wall time (default 600)",
    "  --micro             also run micro-benchmarks (hand-assembled loops) and print their MIPS",
  ].join("\n");
}

function parseArgs(argv: string[]): Options {
  const opts: Options = {
    iterations: DEFAULT_ITERATIONS,
    warmup: 200,
    seed: DEFAULT_SEED,
    nativeRepeats: 10,
    maxSeconds: 600,
    micro: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [name, inline] = arg.startsWith("--") && arg.includes("=") ? arg.split("=", 2) : [arg, undefined];
    const value = (): number => {
      const text = inline ?? argv[++i];
      const n = Number(text);
      if (text === undefined || !Number.isInteger(n) || n < 1 || n > 0xffffffff) {
        fail(
          `${name} needs a positive integer, got ${text === undefined ? "nothing" : JSON.stringify(text)}`,
        );
      }
      return n;
    };
    switch (name) {
      case "--iterations":
        opts.iterations = value();
        break;
      case "--warmup":
        opts.warmup = value();
        break;
      case "--native-repeats":
        opts.nativeRepeats = value();
        break;
      case "--max-seconds":
        opts.maxSeconds = value();
        break;
      case "--micro":
        opts.micro = true;
        break;
      case "-h":
      case "--help":
        process.stdout.write(`${usage()}\n`);
        process.exit(0);
        break;
      default:
        fail(`unknown option ${JSON.stringify(arg)}\n${usage()}`);
    }
  }
  return opts;
}

function fail(message: string, status = 2): never {
  process.stderr.write(`cpu-bench: ${message}\n`);
  process.exit(status);
}

/** The repository root: the nearest directory above this file holding package.json. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "bench", "workload"))) return dir;
    const up = dirname(dir);
    if (up === dir) fail("cannot find the repository root (package.json with bench/workload/)");
    dir = up;
  }
}

function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    return fail(`${cmd} ${args.join(" ")} failed:\n${err.stderr || err.message}`);
  }
}

// ------------------------------------------------------------------ build

interface Built {
  elf: string;
  native: string;
}

function build(root: string): Built {
  const src = join(root, "bench", "workload");
  const out = join(root, "build", "bench");
  mkdirSync(out, { recursive: true });
  const elf = join(out, "workload.elf");
  const native = join(out, "workload-native");
  run("gcc", [
    "-m32",
    "-march=i686",
    "-ffreestanding",
    "-nostdlib",
    "-fno-pic",
    "-fno-pie",
    "-no-pie",
    "-static",
    "-O2",
    "-fno-asynchronous-unwind-tables",
    "-fno-stack-protector",
    "-Wall",
    "-Wl,--build-id=none",
    "-T",
    join(src, "link.ld"),
    join(src, "start32.S"),
    join(src, "workload.c"),
    "-o",
    elf,
  ]);
  run("gcc", ["-O2", "-Wall", join(src, "native.c"), join(src, "workload.c"), "-o", native]);
  return { elf, native };
}

// ------------------------------------------------------------------ ELF32 loading

interface Symbol32 {
  name: string;
  value: number;
  size: number;
  isFunc: boolean;
}

interface Elf32 {
  entry: number;
  segments: { vaddr: number; offset: number; filesz: number; memsz: number }[];
  symbols: Map<string, Symbol32>;
}

function parseElf32(image: Uint8Array, path: string): Elf32 {
  const bad = (why: string): never => fail(`${path}: not a usable ELF32 i386 executable: ${why}`);
  if (image.length < 52) bad("too short");
  const v = new DataView(image.buffer, image.byteOffset, image.byteLength);
  if (v.getUint32(0, false) !== 0x7f454c46) bad("no ELF magic");
  if (image[4] !== 1) bad("not ELFCLASS32");
  if (image[5] !== 1) bad("not little-endian");
  if (v.getUint16(16, true) !== 2) bad("not ET_EXEC");
  if (v.getUint16(18, true) !== 3) bad("not EM_386");
  const entry = v.getUint32(24, true);
  const phoff = v.getUint32(28, true);
  const shoff = v.getUint32(32, true);
  const phentsize = v.getUint16(42, true);
  const phnum = v.getUint16(44, true);
  const shentsize = v.getUint16(46, true);
  const shnum = v.getUint16(48, true);
  if (phoff + phnum * phentsize > image.length) bad("program headers out of range");

  const segments: Elf32["segments"] = [];
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    if (v.getUint32(p, true) !== 1) continue; // PT_LOAD
    const seg = {
      offset: v.getUint32(p + 4, true),
      vaddr: v.getUint32(p + 8, true),
      filesz: v.getUint32(p + 16, true),
      memsz: v.getUint32(p + 20, true),
    };
    if (seg.offset + seg.filesz > image.length || seg.filesz > seg.memsz) bad(`PT_LOAD ${i} out of range`);
    segments.push(seg);
  }
  if (segments.length === 0) bad("no PT_LOAD segment");

  const symbols = new Map<string, Symbol32>();
  if (shoff !== 0 && shoff + shnum * shentsize <= image.length) {
    for (let i = 0; i < shnum; i++) {
      const s = shoff + i * shentsize;
      if (v.getUint32(s + 4, true) !== 2) continue; // SHT_SYMTAB
      const off = v.getUint32(s + 16, true);
      const size = v.getUint32(s + 20, true);
      const link = v.getUint32(s + 24, true);
      const entsize = v.getUint32(s + 36, true) || 16;
      const strOff = v.getUint32(shoff + link * shentsize + 16, true);
      for (let e = off; e + entsize <= off + size; e += entsize) {
        const nameOff = v.getUint32(e, true);
        let end = strOff + nameOff;
        while (end < image.length && image[end] !== 0) end++;
        const name = Buffer.from(image.subarray(strOff + nameOff, end)).toString("latin1");
        if (name === "") continue;
        symbols.set(name, {
          name,
          value: v.getUint32(e + 4, true),
          size: v.getUint32(e + 8, true),
          isFunc: (image[e + 12] & 0xf) === 2,
        });
      }
    }
  }
  return { entry, segments, symbols };
}

function loadElf(elf: Elf32, image: Uint8Array, mem: Uint8Array): void {
  for (const s of elf.segments) {
    if (s.vaddr + s.memsz > mem.length) fail(`segment at 0x${hex(s.vaddr)} does not fit in memory`);
    mem.set(image.subarray(s.offset, s.offset + s.filesz), s.vaddr);
    mem.fill(0, s.vaddr + s.filesz, s.vaddr + s.memsz);
  }
}

function needSymbol(elf: Elf32, name: string): number {
  const s = elf.symbols.get(name);
  if (!s) return fail(`workload ELF has no symbol ${name} (was it built from bench/workload/start32.S?)`);
  return s.value;
}

/** "func+0x12" for an address, from the function symbols. */
function symbolize(elf: Elf32, addr: number): string {
  let best: Symbol32 | undefined;
  for (const s of elf.symbols.values()) {
    if (!s.isFunc || s.value > addr) continue;
    if (!best || s.value > best.value) best = s;
  }
  return best ? `${best.name}+0x${(addr - best.value).toString(16)}` : "?";
}

// ------------------------------------------------------------------ runs

function hex(n: number, width = 8): string {
  return (n >>> 0).toString(16).padStart(width, "0");
}

interface EmuResult {
  checksum: number;
  retired: number;
  /** Wall-clock seconds of the emulated run. */
  seconds: number;
  /** CPU seconds (user + system) this process spent on it: robust against a loaded machine. */
  cpuSeconds: number;
}

/** blocks: compile hot code (the default); false runs the interpreter alone. */
function runEmulated(elfPath: string, opts: Options, iterations = opts.iterations, blocks = true): EmuResult {
  const image = new Uint8Array(readFileSync(elfPath));
  const elf = parseElf32(image, elfPath);
  const params = needSymbol(elf, "bench_params");
  const result = needSymbol(elf, "bench_result");
  const stackTop = needSymbol(elf, "__stack_top");

  const mem = new Uint8Array(MEM_BYTES);
  loadElf(elf, image, mem);
  const mv = new DataView(mem.buffer);
  mv.setUint32(params, iterations, true);
  mv.setUint32(params + 4, opts.seed, true);

  const cpu = new Cpu(mem);
  if (!blocks) cpu.blockThreshold = 0;
  cpu.resetFlat32();
  cpu.eip = elf.entry;
  cpu.regs[ESP] = stackTop;

  const describeStop = (what: string): never => {
    const lin = (cpu.segBase[CS] + cpu.eip) >>> 0;
    const bytes: string[] = [];
    for (let i = 0; i < 16 && lin + i < mem.length; i++) bytes.push(hex(mem[lin + i], 2));
    const lines = [
      what,
      `  eip        0x${hex(cpu.eip)}  (${symbolize(elf, lin)})`,
      `  bytes      ${bytes.join(" ")}`,
      `  retired    ${cpu.retired.toLocaleString("en-US")} instructions`,
      `  registers  ${["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"].map((r, i) => `${r}=${hex(cpu.regs[i])}`).join(" ")}`,
    ];
    try {
      const dis = execFileSync(
        "objdump",
        ["-d", `--start-address=0x${hex(lin)}`, `--stop-address=0x${hex(lin + 32)}`, elfPath],
        { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] },
      );
      const insns = dis.split("\n").filter((l) => /^\s+[0-9a-f]+:\t/.test(l));
      if (insns.length > 0)
        lines.push("  disassembly (objdump -d):", ...insns.slice(0, 4).map((l) => `    ${l.trim()}`));
    } catch {
      // objdump missing: the bytes above have to do.
    }
    return fail(lines.join("\n"));
  };

  const deadline = opts.maxSeconds * 1000;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  let exit = Exit.Budget as Exit;
  for (;;) {
    try {
      exit = cpu.run(RUN_SLICE);
    } catch (e) {
      describeStop(`the CPU threw ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    }
    if (exit !== Exit.Budget) break;
    if (performance.now() - t0 > deadline)
      describeStop(`the emulated run did not halt within ${opts.maxSeconds} s`);
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpuUsed = process.cpuUsage(c0);
  const cpuSeconds = (cpuUsed.user + cpuUsed.system) / 1e6;

  if (exit !== Exit.Halt) {
    if (exit === Exit.Exception) {
      const name = VECTOR_NAMES[cpu.exitVector] ?? "vector";
      const err = cpu.exitErrorCode >= 0 ? `, error code 0x${cpu.exitErrorCode.toString(16)}` : "";
      const cr2 = cpu.exitVector === 14 ? `, cr2 0x${hex(cpu.exitCr2)}` : "";
      describeStop(`unexpected exit: exception ${cpu.exitVector} (${name}${err}${cr2})`);
    }
    describeStop(exit === Exit.TripleFault ? "unexpected exit: triple fault" : `unexpected exit ${exit}`);
  }
  const checksum = mv.getUint32(result, true);
  if (mv.getUint32(result + 4, true) !== BENCH_DONE)
    describeStop("halted before the workload stored its checksum");
  if (cpu.regs[EAX] >>> 0 !== checksum) {
    describeStop(`EAX 0x${hex(cpu.regs[EAX])} differs from bench_result 0x${hex(checksum)} at hlt`);
  }
  return { checksum, retired: cpu.retired, seconds, cpuSeconds };
}

interface NativeResult {
  checksum: number;
  /** Median wall-clock seconds of one run. */
  seconds: number;
  /** Median process CPU seconds of one run. */
  cpuSeconds: number;
}

function runNative(binary: string, opts: Options): NativeResult {
  const out = run(binary, [String(opts.iterations), String(opts.nativeRepeats)]);
  const r = JSON.parse(out) as { checksum: number; nsPerRunMedian: number; cpuNsPerRunMedian: number };
  return {
    checksum: r.checksum >>> 0,
    seconds: r.nsPerRunMedian / 1e9,
    cpuSeconds: r.cpuNsPerRunMedian / 1e9,
  };
}

// ------------------------------------------------------------------ micro-benchmarks

interface Micro {
  name: string;
  /** Machine code loaded at MICRO_BASE; it ends in hlt, ECX counts the loop. */
  code: number[];
}

const MICRO_BASE = 0x1000;
const MICRO_DATA = 0x100000;
const MICRO_LOOPS = 4_000_000;

const MICROS: Micro[] = [
  // l: inc eax; dec ecx; jnz l
  { name: "inc/dec/jnz (registers)", code: [0x40, 0x49, 0x75, 0xfc, 0xf4] },
  // l: mov eax,[esi+4]; add eax,ebx; mov [esi+8],eax; dec ecx; jnz l
  {
    name: "load/add/store [esi+d8]",
    code: [0x8b, 0x46, 0x04, 0x01, 0xd8, 0x89, 0x46, 0x08, 0x49, 0x75, 0xf5, 0xf4],
  },
  // l: cmp eax,ebx; jl +1; inc edx; add eax,1; dec ecx; jnz l
  {
    name: "cmp/jl/inc/add",
    code: [0x39, 0xd8, 0x7c, 0x01, 0x42, 0x83, 0xc0, 0x01, 0x49, 0x75, 0xf5, 0xf4],
  },
  // l: movzx eax, byte [esi+ecx]; xor edx,eax; dec ecx; jnz l
  { name: "movzx byte [esi+ecx]/xor", code: [0x0f, 0xb6, 0x04, 0x0e, 0x31, 0xc2, 0x49, 0x75, 0xf7, 0xf4] },
  // l: call f; dec ecx; jnz l; hlt; f: push ebx; pop ebx; ret
  {
    name: "call/push/pop/ret",
    code: [0xe8, 0x04, 0x00, 0x00, 0x00, 0x49, 0x75, 0xf8, 0xf4, 0x53, 0x5b, 0xc3],
  },
];

function runMicros(): void {
  process.stdout.write("micro-benchmarks (MIPS by CPU time, best of 3):\n");
  for (const m of MICROS) {
    let best = 0;
    for (let rep = 0; rep < 3; rep++) {
      const mem = new Uint8Array(MEM_BYTES);
      mem.set(m.code, MICRO_BASE);
      const cpu = new Cpu(mem);
      cpu.resetFlat32();
      cpu.eip = MICRO_BASE;
      cpu.regs[ESP] = 0x80000;
      cpu.regs[ECX] = MICRO_LOOPS;
      cpu.regs[EBX] = MICRO_LOOPS >> 1;
      cpu.regs[ESI] = MICRO_DATA;
      const c0 = process.cpuUsage();
      let exit: Exit;
      do exit = cpu.run(RUN_SLICE);
      while (exit === Exit.Budget);
      const used = process.cpuUsage(c0);
      if (exit !== Exit.Halt) fail(`micro-benchmark "${m.name}" stopped with exit ${exit}`);
      best = Math.max(best, cpu.retired / ((used.user + used.system) / 1e6) / 1e6);
    }
    process.stdout.write(`  ${m.name.padEnd(30)}${best.toFixed(1).padStart(8)} MIPS\n`);
  }
  process.stdout.write("\n");
}

// ------------------------------------------------------------------ main

function main(): void {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.micro) runMicros();
  const root = repoRoot();
  const built = build(root);
  // A JIT warms up: the first run of the same code includes V8 compiling and re-optimising the
  // CPU's run loop (over a second). The headline is the steady state after a warm-up run on a
  // fresh CPU; the cold figures are printed too.
  const cold = opts.warmup > 0 ? runEmulated(built.elf, opts, opts.warmup) : null;
  const emu = runEmulated(built.elf, opts);
  // The same run in the interpreter alone (no compiled blocks), warmed up likewise.
  if (opts.warmup > 0) runEmulated(built.elf, opts, opts.warmup, false);
  const interp = runEmulated(built.elf, opts, opts.iterations, false);
  const nat = runNative(built.native, opts);

  const match = emu.checksum === nat.checksum && interp.checksum === nat.checksum;
  const mips = (r: EmuResult, t: number) => (r.retired / t / 1e6).toFixed(1);
  const row = (label: string, a: string, b: string, c: string) =>
    `  ${label.padEnd(22)}${a.padEnd(22)}${b.padEnd(22)}${c}`;
  const lines = [
    `tsxen CPU benchmark: bench/workload, ${opts.iterations} iterations, seed 0x${hex(opts.seed)}`,
    "",
    row("", "tsxen CPU", "tsxen interpreter", "native (host gcc -O2)"),
    row("", "(compiled blocks)", "(blocks off)", ""),
    row("checksum", `0x${hex(emu.checksum)}`, `0x${hex(interp.checksum)}`, `0x${hex(nat.checksum)}`),
    row(
      "instructions retired",
      emu.retired.toLocaleString("en-US"),
      interp.retired.toLocaleString("en-US"),
      "-",
    ),
    row(
      "seconds (wall)",
      emu.seconds.toFixed(3),
      interp.seconds.toFixed(3),
      `${nat.seconds.toFixed(4)} (median of ${opts.nativeRepeats})`,
    ),
    row(
      "seconds (CPU time)",
      emu.cpuSeconds.toFixed(3),
      interp.cpuSeconds.toFixed(3),
      `${nat.cpuSeconds.toFixed(4)} (median)`,
    ),
    row("MIPS (wall)", mips(emu, emu.seconds), mips(interp, interp.seconds), "-"),
    row("MIPS (CPU time)", mips(emu, emu.cpuSeconds), mips(interp, interp.cpuSeconds), "-"),
    row(
      "slowdown (wall)",
      `${(emu.seconds / nat.seconds).toFixed(1)}x native`,
      `${(interp.seconds / nat.seconds).toFixed(1)}x native`,
      "1x",
    ),
    row(
      "slowdown (CPU time)",
      `${(emu.cpuSeconds / nat.cpuSeconds).toFixed(1)}x native`,
      `${(interp.cpuSeconds / nat.cpuSeconds).toFixed(1)}x native`,
      "1x",
    ),
    ...(cold === null
      ? []
      : [
          "",
          `  measured after a warm-up run of ${opts.warmup} iterations (a fresh CPU, the same process);`,
          `  the warm-up itself, cold: ${(cold.retired / cold.cpuSeconds / 1e6).toFixed(1)} MIPS (CPU time).`,
          "  CPU time includes V8's compiler threads, which optimise the compiled blocks beside the run.",
        ]),
    "",
    match ? "  checksums match" : "  *** CHECKSUM MISMATCH: the emulated CPU computed a different result ***",
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
  if (!match) process.exit(1);
}

main();
