/**
 * Cpu.pushWords (the hypervisor's bounce frames, written at once when they fit one writable
 * page in the TLB) against the push32 calls it stands for: the same memory, ESP, fault (vector,
 * error code, CR2), TLB and decoded-code effects, on every kind of stack the guest can give
 * Xen: flat, based, limited, expand-down, 16-bit (SP wrapping, ESP's high half kept); slots crossing pages that are not present,
 * read-only or supervisor-only; ESP wrapping below 0; a cold TLB, and one holding the pages
 * readable (read-only ones too) and writable; a code page.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CPU_FAULT, Cpu } from "../src/cpu/cpu.js";
import { ESP, SS } from "../src/cpu/regs.js";

const MEM = 0x80000;
const PD = 0x1000;
const PT = 0x2000;
const RW_PAGE = 0x40;
const ABSENT = 0x41;
const READ_ONLY = 0x42;
const SUPERVISOR = 0x43;
const CODE = 0x44;
const RW2 = 0x45;

/** A 512 KiB machine, paged (CR0.WP set) through one page table mapping itself 1:1. */
function machine(): Cpu {
  const cpu = new Cpu(new Uint8Array(MEM));
  cpu.resetFlat32();
  const m = new DataView(cpu.mem8.buffer);
  m.setUint32(PD, PT | 7, true);
  for (let p = 0; p < MEM >>> 12; p++) {
    let pte = (p << 12) | 7;
    if (p === ABSENT) pte = 0;
    if (p === READ_ONLY) pte = (p << 12) | 5;
    if (p === SUPERVISOR) pte = (p << 12) | 3;
    m.setUint32(PT + p * 4, pte, true);
  }
  // Bytes to see overwritten (or not) in each page of the stack area.
  for (let a = RW_PAGE << 12; a < (RW2 + 1) << 12; a++) cpu.mem8[a] = a * 7;
  cpu.setCr3(PD);
  cpu.setCr0(cpu.cr0 | 0x80010000);
  return cpu;
}

/** A Cpu costs tens of ms to make: two are reused, memory and TLB put back for each case. */
const cpus = { words: machine(), push32: machine() };
const pristine = cpus.words.mem8.slice();

function reset(cpu: Cpu, cpl: number): void {
  cpu.mem8.set(pristine);
  cpu.flushTlb();
  cpu.codePage[CODE] = 0;
  cpu.setCpl(cpl);
}

interface Stack {
  name: string;
  base: number;
  limit: number;
  attr: number;
}

const STACKS: Stack[] = [
  { name: "flat", base: 0, limit: 0xffffffff, attr: 0xc0f3 },
  { name: "based", base: 0x123, limit: 0xffffffff, attr: 0xc0f3 },
  { name: "limited", base: 0, limit: RW_PAGE * 4096 + 0xff2, attr: 0x40f3 },
  { name: "expand-down", base: 0, limit: RW_PAGE * 4096 + 0x00e, attr: 0x40f7 },
  { name: "limited, based", base: RW_PAGE * 4096 + 0x800, limit: 0x3000, attr: 0x40f3 },
  { name: "16-bit", base: RW_PAGE * 4096 - 0x8000, limit: 0xffff, attr: 0x00f3 },
  // SP wrapping to 0xfffc lands at the top of the first stack page (ESP's high half stays).
  { name: "16-bit, 4 GiB", base: (RW_PAGE + 1) * 4096 - 0x10000, limit: 0xffffffff, attr: 0x80f3 },
];

/** ESP values: around each page's ends, unaligned, and small enough to wrap. */
function espsFor(s: Stack): number[] {
  const out = [0, 4, 0x10, 0x13];
  for (let p = RW_PAGE; p <= RW2 + 1; p++) {
    for (const d of [0, 4, 0x14, 0x16, 0x1c, 0x800, 0xffe]) out.push(((p << 12) + d - s.base) | 0);
  }
  if ((s.attr & 0x4000) === 0)
    return [...out.map((x) => (x & 0xffff) | 0x5a5a0000), 0x10000, 0x10004, 0x10010];
  return out;
}

interface Outcome {
  fault: string;
  esp: number;
  codeWrites: number;
  codePage: number;
  tlb: string;
}

/** The words pushed, the outcome; `via` does the pushing. */
function pushOn(cpu: Cpu, words: Int32Array, n: number, via: "words" | "push32"): Outcome {
  let fault = "none";
  try {
    if (via === "words") cpu.pushWords(words, n);
    else for (let i = 0; i < n; i++) cpu.push32(words[i]);
  } catch (e) {
    assert.equal(cpu.catchFault(e), true, `not a CPU fault: ${String(e)}`);
    fault = `${cpu.exitVector}/${cpu.exitErrorCode}/${cpu.exitCr2 >>> 0}`;
  }
  return {
    fault,
    esp: cpu.regs[ESP],
    codeWrites: cpu.codeWrites,
    codePage: cpu.codePage[CODE],
    tlb: Array.from(cpu.tlb.subarray(RW_PAGE - 1, RW2 + 2)).join(","),
  };
}

/** push32 calls made by cpus.words (none when pushWords wrote the frame at once). */
let push32Calls = 0;
{
  const cpu = cpus.words;
  const push32 = cpu.push32.bind(cpu);
  cpu.push32 = (v: number) => {
    push32Calls++;
    push32(v);
  };
}

describe("Cpu.pushWords: a bounce frame at once, as its push32 calls", () => {
  it("matches push32 on every stack, ESP, frame size, privilege and TLB state", () => {
    const words = Int32Array.from([0x11111111, -0x22222223, 0x33333333, 0x44444444, -1, 0x66666666, 0x7777]);
    let cases = 0;
    let fast = 0;
    let faults = 0;
    for (const cpl of [1, 3])
      for (const s of STACKS)
        for (const esp of espsFor(s))
          for (const n of [3, 5, 7])
            for (const warm of [false, true])
              for (const code of [false, true]) {
                const run = (via: "words" | "push32") => {
                  const cpu = cpus[via];
                  reset(cpu, cpl);
                  const writes0 = cpu.codeWrites;
                  cpu.loadSegmentCache(SS, 0x23, s.base, s.limit, s.attr);
                  cpu.regs[ESP] = esp;
                  if (code) cpu.codePage[CODE] = 1;
                  if (warm) {
                    // The TLB holding the stack's pages readable, then writable where they are
                    // (a walk that faults leaves the entry as it was).
                    for (const write of [false, true])
                      for (let p = RW_PAGE; p <= RW2; p++) {
                        try {
                          cpu.translate(p << 12, write, cpl === 3);
                        } catch (e) {
                          if (e !== CPU_FAULT) throw e;
                        }
                      }
                  }
                  const calls0 = push32Calls;
                  const out = pushOn(cpu, words, n, via);
                  out.codeWrites -= writes0;
                  return { out, calls: push32Calls - calls0, mem: cpu.mem8.slice(0, (RW2 + 2) << 12) };
                };
                const a = run("words");
                const b = run("push32");
                const what = `CPL ${cpl}, ${s.name} stack, ESP ${(esp >>> 0).toString(16)}, ${n} words, ${warm ? "warm" : "cold"} TLB${code ? ", code page" : ""}`;
                assert.deepEqual(a.out, b.out, what);
                assert.equal(Buffer.compare(a.mem, b.mem), 0, `${what}: memory`);
                cases++;
                if (a.calls === 0) fast++;
                if (a.out.fault !== "none") faults++;
              }
    // Both paths are exercised: at once where the frame fits, the pushes elsewhere.
    assert.ok(fast > cases / 20, `${fast} of ${cases} cases at once`);
    assert.ok(cases - fast > cases / 5, `${cases - fast} of ${cases} cases through push32`);
    assert.ok(faults > cases / 10, `${faults} of ${cases} cases faulted`);
  });
});
