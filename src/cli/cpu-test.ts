/**
 * `tsxen cpu-test FILE.json|DIR...`: runs differential CPU test vectors (see
 * docs/cpu-vectors.md; generated with Unicorn by scripts/gen-vectors.py) against the CPU.
 * Prints one line per failing case and `N passed, N failed` as the last line.
 */

import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { Cpu } from "../cpu/cpu.js";
import { EAX, EBP, EBX, ECX, EDI, EDX, ESI, ESP, Exit } from "../cpu/regs.js";
import { wasmBackend } from "../cpu/wasm/backend.js";
import { allocRam } from "../machine/ram.js";

/** Register names in vector files, with their index in cpu.regs. */
const REGS: readonly (readonly [VectorReg, number])[] = [
  ["eax", EAX],
  ["ecx", ECX],
  ["edx", EDX],
  ["ebx", EBX],
  ["esp", ESP],
  ["ebp", EBP],
  ["esi", ESI],
  ["edi", EDI],
];

type VectorReg = "eax" | "ecx" | "edx" | "ebx" | "esp" | "ebp" | "esi" | "edi";

export interface VectorState extends Record<VectorReg, number> {
  eip: number;
  eflags: number;
  memory: [number, number][];
}

export interface VectorException {
  exception: { vector: number; errorCode: number | null; eip?: number };
}

export interface VectorCase {
  name: string;
  initial: VectorState;
  final: VectorState | VectorException;
  /** EFLAGS bits compared (default: all). */
  flagsMask?: number;
  /** Instructions to execute (default 1). */
  steps?: number;
  /** Registers whose final value is undefined, not compared. */
  ignore?: string[];
}

export interface VectorResult {
  passed: number;
  failed: number;
  failures: string[];
}

/** Memory the runner gives the CPU. Vectors keep all addresses below it. */
export const VECTOR_MEMORY = 16 << 20;
const PAGE = 4096;
/** Differences reported per failing case. */
const MAX_DIFFS = 8;

const hex = (v: number): string => `0x${(v >>> 0).toString(16)}`;

const FLAG_NAMES: readonly (readonly [number, string])[] = [
  [1 << 0, "CF"],
  [1 << 2, "PF"],
  [1 << 4, "AF"],
  [1 << 6, "ZF"],
  [1 << 7, "SF"],
  [1 << 8, "TF"],
  [1 << 9, "IF"],
  [1 << 10, "DF"],
  [1 << 11, "OF"],
  [3 << 12, "IOPL"],
  [1 << 14, "NT"],
  [1 << 16, "RF"],
  [1 << 17, "VM"],
  [1 << 18, "AC"],
  [1 << 19, "VIF"],
  [1 << 20, "VIP"],
  [1 << 21, "ID"],
];

function flagNames(bits: number): string {
  const names = FLAG_NAMES.filter(([b]) => (bits & b) !== 0).map(([, n]) => n);
  const rest = bits & ~FLAG_NAMES.reduce((a, [b]) => a | b, 0);
  if (rest !== 0) names.push(hex(rest));
  return names.join(",");
}

function exitName(e: Exit): string {
  switch (e) {
    case Exit.Budget:
      return "Budget";
    case Exit.Halt:
      return "Halt";
    case Exit.Exception:
      return "Exception";
    case Exit.TripleFault:
      return "TripleFault";
  }
  return String(e);
}

function isException(f: VectorState | VectorException): f is VectorException {
  return (f as VectorException).exception !== undefined;
}

/**
 * Runs vector cases on one reused CPU and its memory. Each case runs three times: in the
 * interpreter, then as a compiled block (blocks.ts, compiled before its first run), as a JS
 * function and as WebAssembly (wasm/backend.ts; when the host has WebAssembly); each must
 * give the expected result.
 */
export class VectorRunner {
  readonly mem = allocRam(VECTOR_MEMORY);
  readonly cpu = new Cpu(this.mem);
  /** The wasm back end (each block wasm from its first run), or null without WebAssembly. */
  readonly wasm = wasmBackend(this.cpu);
  /** Entries into compiled blocks or regions from the run loop, in the JS and the wasm passes. */
  jsEntries = 0;
  wasmEntries = 0;
  /** Pages the previous case wrote, cleared before the next one. */
  private dirty = new Set<number>();

  constructor() {
    // Each case's block is its own instructions: decoded ahead, the zeroed memory after them
    // would lengthen the block past the case's budget, and it would run interpreted.
    this.cpu.decodeAhead = false;
  }

  /** Runs one case; returns null when it passes, else what differed. */
  runCase(c: VectorCase): string | null {
    this.cpu.blockThreshold = 0;
    const interpreted = this.runOnce(c);
    if (interpreted !== null) return interpreted;
    this.cpu.blockThreshold = 1;
    this.cpu.regionThreshold = 1;
    this.cpu.backend = "js";
    const entries = () => this.cpu.blockRuns + this.cpu.regionRuns;
    const e0 = entries();
    const compiled = this.runOnce(c);
    this.jsEntries += entries() - e0;
    if (compiled !== null || this.wasm === null)
      return compiled === null ? null : `(compiled block) ${compiled}`;
    this.wasm.batch = 1;
    this.cpu.backend = "wasm";
    const e1 = entries();
    const wasm = this.runOnce(c);
    this.wasmEntries += entries() - e1;
    this.cpu.backend = "js";
    return wasm === null ? null : `(wasm block) ${wasm}`;
  }

  private runOnce(c: VectorCase): string | null {
    try {
      return this.execute(c);
    } catch (e) {
      if (!(e instanceof Error)) return `threw ${String(e)}`;
      const where = e.stack?.split("\n")[1]?.trim() ?? "";
      return `threw ${e.name}: ${e.message}${where ? ` (${where})` : ""}`;
    }
  }

  private clear(): void {
    for (const page of this.dirty) {
      this.mem.fill(0, page, page + PAGE);
      this.cpu.invalidateCode(page, PAGE);
    }
    this.dirty.clear();
  }

  private touch(addr: number): void {
    if (addr < 0 || addr >= VECTOR_MEMORY)
      throw new Error(`vector address ${hex(addr)} outside ${VECTOR_MEMORY >> 20} MiB`);
    this.dirty.add(addr & ~(PAGE - 1));
  }

  private execute(c: VectorCase): string | null {
    const { cpu, mem } = this;
    const init = c.initial;
    this.clear();
    for (const [a, b] of init.memory) {
      this.touch(a);
      mem[a] = b;
    }
    if (!isException(c.final)) for (const [a] of c.final.memory) this.touch(a);
    for (const page of this.dirty) cpu.invalidateCode(page, PAGE);

    cpu.resetFlat32();
    cpu.flushTlb();
    for (const [name, idx] of REGS) cpu.regs[idx] = init[name] | 0;
    cpu.eip = init.eip | 0;
    cpu.setFlags(init.eflags);
    const exit = cpu.run(c.steps ?? 1);

    if (isException(c.final)) {
      const want = c.final.exception;
      if (exit !== Exit.Exception) {
        return `expected exception ${want.vector}, got exit ${exitName(exit)} with eip=${hex(cpu.eip)}`;
      }
      const diffs: string[] = [];
      if (cpu.exitVector !== want.vector)
        diffs.push(`vector expected ${want.vector} actual ${cpu.exitVector}`);
      const code = cpu.exitErrorCode === -1 ? null : cpu.exitErrorCode;
      if (code !== want.errorCode) {
        diffs.push(
          `errorCode expected ${want.errorCode === null ? "none" : hex(want.errorCode)} actual ${code === null ? "none" : hex(code)}`,
        );
      }
      if (want.eip !== undefined && cpu.eip >>> 0 !== want.eip >>> 0) {
        diffs.push(`exception eip expected ${hex(want.eip)} actual ${hex(cpu.eip)}`);
      }
      return diffs.length === 0 ? null : diffs.join("; ");
    }

    if (exit === Exit.Exception) {
      const code = cpu.exitErrorCode === -1 ? "" : `(${hex(cpu.exitErrorCode)})`;
      return `unexpected exception vector ${cpu.exitVector}${code} at eip=${hex(cpu.eip)}`;
    }
    if (exit !== Exit.Budget) return `unexpected exit ${exitName(exit)} at eip=${hex(cpu.eip)}`;

    const want = c.final;
    const diffs: string[] = [];
    const ignore = new Set(c.ignore ?? []);
    for (const [name, idx] of REGS) {
      if (ignore.has(name)) continue;
      if (cpu.regs[idx] >>> 0 !== want[name] >>> 0) {
        diffs.push(`${name} expected ${hex(want[name])} actual ${hex(cpu.regs[idx])}`);
      }
    }
    if (cpu.eip >>> 0 !== want.eip >>> 0) diffs.push(`eip expected ${hex(want.eip)} actual ${hex(cpu.eip)}`);
    const mask = c.flagsMask ?? 0xffffffff;
    const flags = cpu.getFlags();
    const bad = (flags ^ want.eflags) & mask;
    if (bad !== 0) {
      diffs.push(
        `eflags expected ${hex(want.eflags & mask)} actual ${hex(flags & mask)} (mask ${hex(mask)}, differ: ${flagNames(bad)})`,
      );
    }
    for (const [a, b] of want.memory) {
      if (mem[a] !== b) diffs.push(`mem[${hex(a)}] expected ${hex(b)} actual ${hex(mem[a])}`);
    }
    if (diffs.length === 0) return null;
    if (diffs.length > MAX_DIFFS) {
      const more = diffs.length - MAX_DIFFS;
      diffs.length = MAX_DIFFS;
      diffs.push(`... ${more} more`);
    }
    return diffs.join("; ");
  }
}

let shared: VectorRunner | undefined;

/** Runs every case of a vector file (a JSON array); never throws for a failing case. */
export function runVectorFile(path: string, runner?: VectorRunner): VectorResult {
  const r = runner ?? (shared ??= new VectorRunner());
  const result: VectorResult = { passed: 0, failed: 0, failures: [] };
  let cases: VectorCase[];
  try {
    cases = JSON.parse(readFileSync(path, "utf8")) as VectorCase[];
    if (!Array.isArray(cases)) throw new Error("not a JSON array");
  } catch (e) {
    result.failed++;
    result.failures.push(`${path}: cannot load: ${(e as Error).message}`);
    return result;
  }
  for (const c of cases) {
    const why = r.runCase(c);
    if (why === null) {
      result.passed++;
    } else {
      result.failed++;
      result.failures.push(`${c.name}: ${why}`);
    }
  }
  return result;
}

/** The vector files named by paths: files as given, directories' *.json files in name order. */
export function vectorFiles(paths: string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    if (statSync(p).isDirectory()) {
      for (const f of readdirSync(p).sort()) if (f.endsWith(".json")) out.push(join(p, f));
    } else {
      out.push(p);
    }
  }
  return out;
}

/** Runs the files and directories, printing failures and a summary; returns the exit status. */
export function cpuTest(
  paths: string[],
  out: (line: string) => void = (l) => void process.stdout.write(`${l}\n`),
): number {
  let passed = 0;
  let failed = 0;
  let files: string[];
  try {
    files = vectorFiles(paths);
  } catch (e) {
    out(`tsxen: ${(e as Error).message}`);
    out("0 passed, 1 failed");
    return 1;
  }
  const runner = new VectorRunner();
  for (const f of files) {
    const r = runVectorFile(f, runner);
    for (const line of r.failures) out(line);
    passed += r.passed;
    failed += r.failed;
  }
  out(`${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

export function registerCpuTest(program: Command): void {
  program
    .command("cpu-test")
    .description("run CPU test vectors (JSON files, or directories of them)")
    .argument("[files...]", "vector files or directories (default: the committed vectors, test/vectors)")
    .action((files: string[]) => {
      const vectors = fileURLToPath(new URL("../../../test/vectors", import.meta.url));
      process.exitCode = cpuTest(files.length > 0 ? files : [vectors]);
    });
}
