/**
 * CPU benchmark: runs a freestanding C workload (bench/workload/) on the bare tsxen CPU (with
 * compiled blocks, then the interpreter alone), the same image as a multiboot kernel in v86
 * (the npm package, a devDependency, behind SeaBIOS from Debian's `seabios` package), and
 * the same C natively on the host; checks that all produce the same checksum, and prints
 * instructions retired, cold and steady-state MIPS and the tsxen/v86 ratio side by side.
 * Each emulator's run is a fresh Node process (`--same-process`: all in this one). A run
 * gives one sample per emulator, and v86's moved by a quarter from run to run on this shared
 * machine (0.81 to 1.22 printed for the same code), so rounds alternate tsxen (wasm) and v86
 * (which goes first alternates too) and the figures printed are medians over the rounds:
 * each side's, and that of the per-round ratios, with their ranges.
 *
 *   npm run bench:cpu [-- --iterations N] [-- --rounds N] [-- --native-repeats N] [-- --max-seconds S]
 *
 * Exit status: 0 when the checksums match, 1 on a checksum mismatch, 2 when the workload
 * could not be built or the CPU stopped on anything other than the final `hlt`.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Cpu } from "../src/cpu/cpu.js";
import { CS, EAX, EBX, ECX, ESI, ESP, Exit } from "../src/cpu/regs.js";
import type { Backend } from "../src/cpu/wasm/arena.js";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { allocRam } from "../src/machine/ram.js";

/** Long enough (~0.2 s a run in v86) that a load change mid-run moves the figure little. */
const DEFAULT_ITERATIONS = 3000;
/**
 * Long enough that both JITs are done before the measured run: in a fresh process V8 tiers
 * tsxen's block modules and v86's page modules up to TurboFan in the background. After 200
 * iterations neither was (the steady figures rose by a third to a half from 200 to 1,000);
 * after 2,000 v86 still was: through its measured run a V8 worker thread compiled its modules
 * with TurboFan while its main thread ran their baseline (Liftoff) code (perf per thread), so
 * its CPU time was about twice its wall time and its MIPS by CPU time a third lower. After
 * 8,000 its CPU time is its wall time, as tsxen's nearly is.
 */
const DEFAULT_WARMUP = 8000;
const DEFAULT_SEED = 0x2545f491;
/**
 * Rounds of tsxen (wasm and JS blocks) and v86, each a fresh process: enough for a median
 * that one slow sample (a load change, a late compile) does not move.
 */
const DEFAULT_ROUNDS = 5;
/** bench_result + 4 holds this once start32.S has stored the checksum. */
const BENCH_DONE = 0x600dd0de;
const MEM_BYTES = 64 << 20;
/** workload.h's BENCH_PORT: start32.S marks the start and end of each run there. */
const BENCH_PORT = 0x5f0;
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
  /** Rounds of tsxen then v86, side by side. */
  rounds: number;
  /** Only tsxen with this back end (no v86, interpreter or native): for profiles and cachegrind. */
  only: Backend | null;
  /** Run in one process, as before the emulators got a process each (for comparison). */
  sameProcess: boolean;
  /** Internal: this process is a child measuring one emulator; prints its result as JSON. */
  child: Emulator | null;
}

/** What a child process measures: tsxen with a back end, the interpreter alone, or v86. */
type Emulator = Backend | "interp" | "v86";
const EMULATORS: readonly Emulator[] = ["js", "wasm", "interp", "v86"];

function usage(): string {
  return [
    "usage: node dist/bench/cpu-bench.js [options]",
    `  --iterations N      iterations of the workload's kernel mix (default ${DEFAULT_ITERATIONS})`,
    `  --warmup N          iterations of a warm-up run before the measured one (default ${DEFAULT_WARMUP})`,
    "  --native-repeats N  timed native runs; the median is reported (default 10)",
    "  --max-seconds S     give up on the emulated run after S seconds of wall time (default 600)",
    `  --rounds N          rounds of tsxen and v86 side by side; medians and ranges printed (default ${DEFAULT_ROUNDS})`,
    "  --micro             also run micro-benchmarks (hand-assembled loops) and print their MIPS",
    "  --only js|wasm      only tsxen with that back end of compiled blocks, a line a round",
    "                      (for profiles and cachegrind: no v86, interpreter or native run)",
    "  --same-process      run every emulator in this process (default: each in a fresh one)",
  ].join("\n");
}

function parseArgs(argv: string[]): Options {
  const opts: Options = {
    iterations: DEFAULT_ITERATIONS,
    warmup: DEFAULT_WARMUP,
    seed: DEFAULT_SEED,
    nativeRepeats: 10,
    maxSeconds: 600,
    micro: false,
    rounds: DEFAULT_ROUNDS,
    only: null,
    sameProcess: false,
    child: null,
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
      case "--rounds":
        opts.rounds = value();
        break;
      case "--micro":
        opts.micro = true;
        break;
      case "--only": {
        const b = inline ?? argv[++i];
        if (b !== "js" && b !== "wasm")
          fail(`--only takes js or wasm, got ${JSON.stringify(b ?? "nothing")}`);
        opts.only = b;
        break;
      }
      case "--same-process":
        opts.sameProcess = true;
        break;
      case "--child": {
        const c = inline ?? argv[++i];
        if (!EMULATORS.includes(c as Emulator))
          fail(`--child takes ${EMULATORS.join("|")}, got ${JSON.stringify(c)}`);
        opts.child = c as Emulator;
        break;
      }
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

/** One timed run of workload_run, between two writes to BENCH_PORT. */
interface Phase {
  checksum: number;
  /** Instructions retired by tsxen in it (v86 runs the same code: the same count). */
  retired: number;
  /** Wall-clock seconds. */
  seconds: number;
  /** CPU seconds (user + system) this process spent on it: robust against a loaded machine. */
  cpuSeconds: number;
}

interface EmuResult {
  /** The warm-up run: the first time the workload runs in this emulator (null: --warmup 0). */
  cold: Phase | null;
  /** The measured run, in the same emulator after the warm-up. */
  steady: Phase;
}

/**
 * Times the runs start32.S brackets with writes to BENCH_PORT: 1/3 start the warm-up and
 * the measured run, 2/4 end them; BENCH_PORT + 4 carries the checksum just before an end.
 * `retired` reads the emulator's instruction count, when it has one.
 */
class PhaseClock {
  readonly phases: Phase[] = [];
  private t = 0;
  private cpu0 = process.cpuUsage();
  private r = 0;
  private checksum = 0;
  constructor(private readonly retired: () => number) {}

  write(port: number, value: number): void {
    if (port === BENCH_PORT + 4) {
      this.checksum = value >>> 0;
      return;
    }
    if (port !== BENCH_PORT) return;
    if (value === 1 || value === 3) {
      this.r = this.retired();
      this.cpu0 = process.cpuUsage();
      this.t = performance.now();
    } else if (value === 2 || value === 4) {
      const seconds = (performance.now() - this.t) / 1000;
      const used = process.cpuUsage(this.cpu0);
      this.phases.push({
        checksum: this.checksum,
        retired: this.retired() - this.r,
        seconds,
        cpuSeconds: (used.user + used.system) / 1e6,
      });
    }
  }

  result(warmup: number): EmuResult | null {
    const want = warmup > 0 ? 2 : 1;
    if (this.phases.length !== want) return null;
    return { cold: warmup > 0 ? this.phases[0] : null, steady: this.phases[want - 1] };
  }
}

/** blocks: compile hot code (the default); false runs the interpreter alone. */
/** Compiled blocks' figures of a wasm run: blocks, their runs, instructions written inline. */
interface WasmFigures {
  blocks: number;
  runs: number;
  inline: number;
  handlers: number;
}

function runEmulated(
  elfPath: string,
  opts: Options,
  blocks = true,
  backend: Backend = "js",
): EmuResult & { wasm?: WasmFigures } {
  const image = new Uint8Array(readFileSync(elfPath));
  const elf = parseElf32(image, elfPath);
  const params = needSymbol(elf, "bench_params");
  const result = needSymbol(elf, "bench_result");
  const stackTop = needSymbol(elf, "__stack_top");

  // On a WebAssembly.Memory, as a machine's RAM is: the wasm back end needs it.
  const mem = allocRam(MEM_BYTES);
  loadElf(elf, image, mem);
  const mv = new DataView(mem.buffer);
  mv.setUint32(params, opts.iterations, true);
  mv.setUint32(params + 4, opts.seed, true);
  mv.setUint32(params + 8, opts.warmup, true);

  const cpu = new Cpu(mem);
  cpu.backend = backend;
  if (!blocks) cpu.blockThreshold = 0;
  cpu.resetFlat32();
  cpu.eip = elf.entry;
  cpu.regs[ESP] = stackTop;
  const clock = new PhaseClock(() => cpu.retiredTotal);
  cpu.io = { read: () => -1, write: (port, _size, value) => clock.write(port, value) };
  const describeStop = (what: string): never => {
    const lin = (cpu.segBase[CS] + cpu.eip) >>> 0;
    const bytes: string[] = [];
    for (let i = 0; i < 16 && lin + i < mem.length; i++) bytes.push(hex(mem[lin + i], 2));
    const lines = [
      what,
      `  eip        0x${hex(cpu.eip)}  (${symbolize(elf, lin)})`,
      `  bytes      ${bytes.join(" ")}`,
      `  retired    ${cpu.retiredTotal.toLocaleString("en-US")} instructions`,
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
  const r =
    clock.result(opts.warmup) ??
    describeStop(`expected ${opts.warmup > 0 ? 2 : 1} timed runs, got ${clock.phases.length}`);
  const w = backend === "wasm" ? wasmBackend(cpu) : null;
  if (backend === "wasm" && (w === null || w.runs === 0)) describeStop("the wasm back end ran no block");
  return w === null
    ? r
    : { ...r, wasm: { blocks: w.blocks, runs: w.runs, inline: w.inline, handlers: w.handlers } };
}

// ------------------------------------------------------------------ v86

/** Debian's seabios package (apt-get install seabios) puts its images here. */
const SEABIOS_DIR = "/usr/share/seabios";

/** The v86 figures, or why they are missing. */
type V86Result = (EmuResult & { version: string; ownCount: number }) | { skipped: string };

/** The same image as a multiboot kernel, its bench_params patched in the file itself. */
function patchedImage(elfPath: string, opts: Options): ArrayBuffer {
  const image = new Uint8Array(readFileSync(elfPath));
  const elf = parseElf32(image, elfPath);
  const params = needSymbol(elf, "bench_params");
  const seg = elf.segments.find((s) => params >= s.vaddr && params + 12 <= s.vaddr + s.filesz);
  if (!seg) return fail("bench_params is not in a loaded segment's file contents");
  const v = new DataView(image.buffer, image.byteOffset + seg.offset + (params - seg.vaddr), 12);
  v.setUint32(0, opts.iterations, true);
  v.setUint32(4, opts.seed, true);
  v.setUint32(8, opts.warmup, true);
  return image.buffer.slice(image.byteOffset, image.byteOffset + image.length);
}

function fileBuffer(path: string): { buffer: ArrayBuffer } {
  const b = readFileSync(path);
  return { buffer: b.buffer.slice(b.byteOffset, b.byteOffset + b.length) };
}

/**
 * Boots the workload as a multiboot kernel in v86 (its x86-to-WebAssembly JIT) behind
 * SeaBIOS, and times the same BENCH_PORT-bracketed runs from v86's port-write callback.
 * Its phases' `retired` is v86's own counter until `withRetired` puts tsxen's count there.
 */
async function runV86(root: string, elfPath: string, opts: Options): Promise<V86Result> {
  const pkg = join(root, "node_modules", "v86");
  if (!existsSync(join(pkg, "package.json")))
    return { skipped: "the v86 package is not installed (npm install)" };
  const bios = join(SEABIOS_DIR, "bios.bin");
  const vgaBios = join(SEABIOS_DIR, "vgabios-stdvga.bin");
  if (!existsSync(bios) || !existsSync(vgaBios))
    return { skipped: `no ${bios} / ${vgaBios} (apt-get install seabios)` };
  const version = (JSON.parse(readFileSync(join(pkg, "package.json"), "utf8")) as { version: string })
    .version;
  const { V86 } = await import("v86");
  type V86Io = {
    register_write(
      port: number,
      dev: object,
      w8?: (v: number) => void,
      w16?: (v: number) => void,
      w32?: (v: number) => void,
    ): void;
  };
  return new Promise<V86Result>((resolve) => {
    const emulator = new V86({
      wasm_path: join(pkg, "build", "v86.wasm"),
      bios: fileBuffer(bios),
      vga_bios: fileBuffer(vgaBios),
      multiboot: { buffer: patchedImage(elfPath, opts) },
      memory_size: MEM_BYTES,
      autostart: false,
      disable_keyboard: true,
      disable_mouse: true,
      disable_speaker: true,
    });
    const counter = () => emulator.get_instruction_counter();
    const clock = new PhaseClock(counter);
    let ownCount = 0;
    let ownStart = 0;
    const timer = setTimeout(() => {
      void emulator.destroy();
      resolve({ skipped: `v86 did not finish within ${opts.maxSeconds} s` });
    }, opts.maxSeconds * 1000);
    const finish = () => {
      clearTimeout(timer);
      void emulator.destroy();
      const r = clock.result(opts.warmup);
      if (!r) return resolve({ skipped: `v86 reported ${clock.phases.length} timed runs` });
      resolve({ ...r, version, ownCount });
    };
    emulator.add_listener("emulator-loaded", () => {
      const io = (emulator as unknown as { v86: { cpu: { io: V86Io } } }).v86.cpu.io;
      const dev = {};
      io.register_write(BENCH_PORT + 4, dev, undefined, undefined, (v) => clock.write(BENCH_PORT + 4, v));
      io.register_write(BENCH_PORT, dev, undefined, undefined, (v) => {
        clock.write(BENCH_PORT, v);
        if (v === 3) ownStart = counter();
        if (v === 4) {
          ownCount = (counter() - ownStart) >>> 0;
          finish();
        }
      });
      void emulator.run();
    });
  });
}

/**
 * v86's figures with tsxen's instruction count of the same runs (the same code and parameters
 * retire the same instructions): wall and CPU time are v86's, the count the architectural one.
 */
function withRetired(v: V86Result, tsxen: EmuResult): V86Result {
  if ("skipped" in v) return v;
  if (v.cold && tsxen.cold) v.cold.retired = tsxen.cold.retired;
  v.steady.retired = tsxen.steady.retired;
  return v;
}

type Measured = ReturnType<typeof runEmulated>;

/** One emulator's run, in this process. */
async function measureHere(
  kind: Emulator,
  root: string,
  elf: string,
  opts: Options,
): Promise<Measured | V86Result> {
  if (kind === "v86") return runV86(root, elf, opts);
  return kind === "interp" ? runEmulated(elf, opts, false) : runEmulated(elf, opts, true, kind);
}

/**
 * One emulator's run in a fresh Node process (the default): otherwise each inherits the heap,
 * the garbage and the compiler threads' backlog of the ones before it in the round, and the
 * order of the round decides who pays for whom.
 */
async function measure(
  kind: Emulator,
  root: string,
  elf: string,
  opts: Options,
): Promise<Measured | V86Result> {
  if (opts.sameProcess) return measureHere(kind, root, elf, opts);
  const args = [
    ...process.execArgv,
    fileURLToPath(import.meta.url),
    "--iterations",
    String(opts.iterations),
    "--warmup",
    String(opts.warmup),
    "--max-seconds",
    String(opts.maxSeconds),
    "--child",
    kind,
  ];
  const r = spawnSync(process.execPath, args, {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    maxBuffer: 1 << 20,
  });
  if (r.status !== 0) fail(`the ${kind} run's process ended with ${r.status ?? r.signal}`, r.status ?? 2);
  const last = r.stdout.trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(last) as Measured | V86Result;
  } catch {
    return fail(`the ${kind} run's process printed no result: ${JSON.stringify(r.stdout.slice(-200))}`);
  }
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
      best = Math.max(best, cpu.retiredTotal / ((used.user + used.system) / 1e6) / 1e6);
    }
    process.stdout.write(`  ${m.name.padEnd(30)}${best.toFixed(1).padStart(8)} MIPS\n`);
  }
  process.stdout.write("\n");
}

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.micro) runMicros();
  const root = repoRoot();
  if (opts.child !== null) {
    // The parent built the workload; a child only measures and prints its result.
    const r = await measureHere(opts.child, root, join(root, "build", "bench", "workload.elf"), opts);
    process.stdout.write(`${JSON.stringify(r)}\n`);
    return;
  }
  const built = build(root);
  if (opts.only !== null) {
    for (let r = 0; r < opts.rounds; r++) {
      const e = runEmulated(built.elf, opts, true, opts.only);
      const s = e.steady;
      const w = e.wasm;
      process.stdout.write(
        `${opts.only} blocks, round ${r + 1}: steady ${(s.retired / s.cpuSeconds / 1e6).toFixed(1)} MIPS by CPU time, ` +
          `${(s.retired / s.seconds / 1e6).toFixed(1)} wall; checksum 0x${hex(s.checksum)}` +
          (w ? `; ${w.blocks} wasm blocks, ${w.runs.toLocaleString("en-US")} runs` : "") +
          "\n",
      );
    }
    return;
  }
  // Side by side: each round runs tsxen (wasm) and v86 one right after the other on the same
  // image, so a load change on this shared machine hits both; which goes first alternates
  // (a round's first process may find the machine otherwise than its second). JS blocks run
  // after the pair. Every figure below is a median over the rounds, the ratio's of the
  // per-round ratios.
  const rounds: { emu: Measured; wasm: Measured; v86: V86Result }[] = [];
  for (let r = 0; r < opts.rounds; r++) {
    let wasm: Measured;
    let v86: V86Result;
    if (r % 2 === 0) {
      wasm = (await measure("wasm", root, built.elf, opts)) as Measured;
      v86 = (await measure("v86", root, built.elf, opts)) as V86Result;
    } else {
      v86 = (await measure("v86", root, built.elf, opts)) as V86Result;
      wasm = (await measure("wasm", root, built.elf, opts)) as Measured;
    }
    const emu = (await measure("js", root, built.elf, opts)) as Measured;
    rounds.push({ emu, wasm, v86: withRetired(v86, emu) });
    // Each round as it ends (on stderr): a run cut short (a stop, the time limit) keeps them.
    const m = (e: EmuResult) => (e.steady.retired / e.steady.cpuSeconds / 1e6).toFixed(1);
    const v = "skipped" in v86 ? null : v86;
    process.stderr.write(
      `cpu-bench: round ${r + 1}: steady MIPS by CPU time: wasm ${m(wasm)}, JS ${m(emu)}, v86 ${v ? m(v) : "-"}` +
        (v ? `; wasm / v86 ${(v.steady.cpuSeconds / wasm.steady.cpuSeconds).toFixed(2)}` : "") +
        "\n",
    );
  }
  const interp = (await measure("interp", root, built.elf, opts)) as Measured;
  const nat = runNative(built.native, opts);

  const v86s = rounds.flatMap((r) => ("skipped" in r.v86 ? [] : [r.v86]));
  const wasms = rounds.map((r) => r.wasm);
  const emus = rounds.map((r) => r.emu);
  const sums = [...wasms, ...emus, interp, ...v86s].map((e) => e.steady.checksum);
  const match = sums.every((c) => c === nat.checksum);
  const mips = (p: Phase, t: number) => p.retired / t / 1e6;
  const f1 = (n: number) => n.toFixed(1);
  const median = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
  };
  /** The median over a column's runs, and "(min-max)" when there are several. */
  const med = (xs: number[], fmt: (n: number) => string, range = true): string =>
    xs.length === 0
      ? "-"
      : xs.length === 1 || !range
        ? fmt(median(xs))
        : `${fmt(median(xs))} (${fmt(Math.min(...xs))}-${fmt(Math.max(...xs))})`;
  const cols = (w: string, a: string, b: string, c: string, d: string) =>
    `${w.padEnd(20)}${a.padEnd(20)}${b.padEnd(20)}${c.padEnd(24)}${d}`;
  const row = (label: string, w: string, e: string, i: string, v: string, n: string) =>
    `  ${label.padEnd(26)}${cols(w, e, i, v, n)}`;
  const columns: EmuResult[][] = [wasms, emus, [interp], v86s];
  const each = (
    fn: (p: Phase) => number,
    fmt: (n: number) => string,
    n: string,
  ): [string, string, string, string, string] => {
    const [w, e, i, v] = columns.map((col) =>
      med(
        col.map((r) => fn(r.steady)),
        fmt,
        false,
      ),
    );
    return [w, e, i, v, n];
  };
  const cold = (col: EmuResult[]) =>
    med(
      col.flatMap((r) => (r.cold ? [mips(r.cold, r.cold.seconds)] : [])),
      f1,
      false,
    );
  const v86 = v86s[v86s.length - 1] ?? null;
  const vname = v86 ? `v86 ${v86.version}` : "v86";
  const sumOf = (col: EmuResult[]) => {
    const set = [...new Set(col.map((r) => r.steady.checksum))];
    return set.length === 0 ? "-" : set.map((c) => `0x${hex(c)}`).join(" ");
  };
  const lines = [
    `tsxen CPU benchmark: bench/workload, ${opts.iterations} iterations (warm-up ${opts.warmup}), seed 0x${hex(opts.seed)}`,
    `  medians of ${rounds.length} round(s) (the interpreter and native: one run; native the median of ${opts.nativeRepeats} repeats)`,
    "",
    row("", "tsxen CPU", "tsxen CPU", "tsxen interpreter", vname, "native"),
    row("", "(wasm: default)", "(JS blocks)", "(blocks off)", "(its wasm JIT)", "(host gcc -O2)"),
    row("checksum", sumOf(wasms), sumOf(emus), sumOf([interp]), sumOf(v86s), `0x${hex(nat.checksum)}`),
    row(
      "instructions retired",
      ...each(
        (p) => p.retired,
        (n) => n.toLocaleString("en-US"),
        "-",
      ),
    ),
    row("cold MIPS (wall)", cold(wasms), cold(emus), cold([interp]), cold(v86s), "-"),
    row(
      "steady seconds (wall)",
      ...each(
        (p) => p.seconds,
        (n) => n.toFixed(3),
        nat.seconds.toFixed(4),
      ),
    ),
    row(
      "steady seconds (CPU time)",
      ...each(
        (p) => p.cpuSeconds,
        (n) => n.toFixed(3),
        nat.cpuSeconds.toFixed(4),
      ),
    ),
    row(
      "steady MIPS (wall)",
      ...each((p) => mips(p, p.seconds), f1, f1(emus[0].steady.retired / nat.seconds / 1e6)),
    ),
    row(
      "steady MIPS (CPU time)",
      ...each((p) => mips(p, p.cpuSeconds), f1, f1(emus[0].steady.retired / nat.cpuSeconds / 1e6)),
    ),
    row(
      "slowdown (CPU time)",
      ...each(
        (p) => p.cpuSeconds / nat.cpuSeconds,
        (n) => `${f1(n)}x native`,
        "1x",
      ),
    ),
    "",
  ];
  if (v86) {
    lines.push(
      `  v86's own instruction counter for the measured run: ${v86.ownCount.toLocaleString("en-US")}`,
      "  (MIPS above divide tsxen's architectural count of the same run by each one's time).",
    );
  }
  const skipped = rounds.find((r) => "skipped" in r.v86)?.v86;
  if (skipped && "skipped" in skipped) lines.push(`  v86: not run in every round: ${skipped.skipped}`);
  const per = (xs: number[], fmt: (n: number) => string) => xs.map(fmt).join(", ");
  const f2 = (n: number) => n.toFixed(2);
  const paired = rounds.flatMap((r) => ("skipped" in r.v86 ? [] : [{ ...r, v86: r.v86 }]));
  if (paired.length > 0) {
    const ratios = (t: (r: (typeof paired)[number]) => Phase, by: "cpuSeconds" | "seconds") =>
      paired.map((r) => r.v86.steady[by] / t(r)[by]);
    const line = (name: string, t: (r: (typeof paired)[number]) => Phase) => {
      const cpu = ratios(t, "cpuSeconds");
      const wall = ratios(t, "seconds");
      return [
        `    ${name} by CPU time: median ${med(cpu, f2)}; per round ${per(cpu, f2)}`,
        `    ${"".padEnd(name.length)} by wall time: median ${med(wall, f2)}; per round ${per(wall, f2)}`,
      ];
    };
    lines.push(
      `  tsxen / v86, steady state, ${paired.length} round(s) side by side (the median of the per-round ratios, their range):`,
      ...line("wasm blocks (default)", (r) => r.wasm.steady),
      ...line("JS blocks            ", (r) => r.emu.steady),
    );
  }
  const mipsOf = (col: EmuResult[], by: "cpuSeconds" | "seconds") =>
    col.map((r) => mips(r.steady, r.steady[by]));
  const side = (name: string, col: EmuResult[]) =>
    `    ${name} CPU time ${med(mipsOf(col, "cpuSeconds"), f1)}: ${per(mipsOf(col, "cpuSeconds"), f1)}; ` +
    `wall ${med(mipsOf(col, "seconds"), f1)}`;
  const wf = rounds[rounds.length - 1].wasm.wasm;
  lines.push(
    "  steady MIPS, the median (range): per round",
    side("wasm blocks:", wasms),
    side("JS blocks:  ", emus),
    side("v86:        ", v86s),
    ...(wf
      ? [
          `  ${wf.blocks} wasm blocks, ${wf.runs.toLocaleString("en-US")} runs; ` +
            `${((100 * wf.inline) / Math.max(1, wf.inline + wf.handlers)).toFixed(1)} % of their instructions inline`,
        ]
      : []),
  );
  lines.push(
    "",
    "  cold: the warm-up run, the first time the workload runs in a fresh emulator (V8 and v86",
    "  compiling); steady: the measured run right after it in the same emulator. CPU time",
    "  includes V8's compiler threads." +
      (opts.sameProcess
        ? " All emulators ran in this one process."
        : " Each emulator ran in a fresh Node process."),
    "",
    match ? "  checksums match" : "  *** CHECKSUM MISMATCH: an emulated CPU computed a different result ***",
  );
  process.stdout.write(`${lines.join("\n")}\n`);
  if (!match) process.exit(1);
}

await main();
