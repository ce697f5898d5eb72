/**
 * The fast trap gate delivered inside the CPU's run (traps.ts fastTrapInRun, the CPU's
 * softIntHook) against the exit path it stands for (softwareInterrupt + bounce): two machines
 * booted alike to the ring-3 int 0x80 of bench_exits' fast_trap loop, the same edge put in
 * both, then one steps with the hook and one without; after each step the registers, segment
 * caches, CPL, flags, CR2, retired count, the domain's state and the whole of machine memory
 * must be the same. The good cases must take the hook (no exit); the others must leave it all
 * to the exit path (a crash for a bad kernel stack, the CPU's #GP/#NP for a bad gate), with
 * nothing changed by the attempt.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Exit, TF } from "../src/cpu/regs.js";
import { HYPERVISOR_VIRT_START } from "../src/public/arch_x86_32.js";
import type { Vcpu } from "../src/xen/domain.js";
import type { Hypervisor } from "../src/xen/hypervisor.js";
import { handleException } from "../src/xen/traps.js";
import { bootBenchExits, machineState, step } from "./support/exit-steps.js";

interface M {
  hv: Hypervisor;
  v: Vcpu;
}

/** bench_exits at its first ring-3 int 0x80 (the fast trap installed, the loop to run n times). */
function boot(backend: "js" | "wasm" = "js"): M {
  const { hv, v, out } = bootBenchExits("n=40 rounds=1 only=fast_trap", backend);
  // Stopped at the first int 0x80 from ring 3, before it retires: the hook puts it back.
  const cpu = hv.cpu;
  const hook = cpu.softIntHook;
  let at = false;
  cpu.softIntHook = (vector) => {
    if (at || vector !== 0x80 || cpu.cpl !== 3) return false;
    at = true;
    cpu.eip = (cpu.eip - 2) | 0;
    cpu.retiredTotal--;
    hv.requestStop();
    return true;
  };
  const r = hv.run(hv.nowNs() + 1e9);
  cpu.softIntHook = hook;
  assert.equal(r.kind, "stopped", out());
  assert.match(out(), /fast_trap begin/);
  assert.equal(hv.cpu.cpl, 3);
  assert.equal(
    hv.cpu.mem8[hv.cpu.translate((hv.cpu.segBase[1] + hv.cpu.eip) | 0, false, true)],
    0xcd,
    "at the int",
  );
  return { hv, v };
}

/** A VA of the guest's kernel mapped present and read-only (its own page tables are). */
function readOnlyVa(m: M): number {
  const hv = m.hv;
  const l2 = m.v.baseMfn * 4096;
  for (let slot = 0x300; slot < HYPERVISOR_VIRT_START >>> 22; slot++) {
    const pde = hv.read32(l2 + slot * 4);
    if ((pde & 1) === 0) continue;
    for (let i = 0; i < 1024; i++) {
      const pte = hv.read32((pde & ~0xfff) + i * 4);
      if ((pte & 3) === 1) return ((slot << 22) | (i << 12)) >>> 0;
    }
  }
  throw new Error("no read-only page");
}

interface Case {
  name: string;
  /** The hook delivers the int (else the exit path does, alone). */
  fast: boolean;
  setup?: (m: M) => void;
  /** Steps to compare after (the handler's iret back and the loop on). */
  steps?: number;
}

const cases: Case[] = [
  { name: "the kernel stack from stack_switch, cold TLB then warm", fast: true, steps: 40 },
  {
    name: "a kernel stack whose frame crosses into the page below (two pages: the pushes, one by one)",
    fast: false,
    setup: (m) => {
      m.v.kernelEsp = ((m.v.kernelEsp & ~0xfff) - 0x1000 + 8) | 0;
    },
    steps: 3,
  },
  {
    name: "a kernel stack ending at a page's start (the frame wholly in the page below)",
    fast: true,
    setup: (m) => {
      m.v.kernelEsp = ((m.v.kernelEsp & ~0xfff) - 0x1000) | 0;
    },
    steps: 3,
  },
  {
    name: "a kernel stack in Xen's area (beyond the ring-1 segment's limit): crashed",
    fast: false,
    setup: (m) => {
      m.v.kernelEsp = 0xfc500000 | 0;
    },
  },
  {
    name: "a kernel stack in the read-only M2P mapping, inside the segment: crashed",
    fast: false,
    setup: (m) => {
      m.v.kernelEsp = (HYPERVISOR_VIRT_START + 0x100) | 0;
    },
  },
  {
    name: "a kernel stack at an unmapped page: crashed",
    fast: false,
    setup: (m) => {
      m.v.kernelEsp = 0x40001000;
    },
  },
  {
    name: "a kernel stack at a read-only page (its own L1/L2): crashed, the table untouched",
    fast: false,
    setup: (m) => {
      m.v.kernelEsp = (readOnlyVa(m) + 0x800) | 0;
    },
  },
  {
    name: "the kernel stack wrapping below 0: crashed",
    fast: false,
    setup: (m) => {
      m.v.kernelEsp = 8;
    },
  },
  {
    name: "a kernel stack selector of code: crashed",
    fast: false,
    setup: (m) => {
      m.v.kernelSs = 0x0819;
    },
  },
  {
    name: "a null kernel stack selector: crashed",
    fast: false,
    setup: (m) => {
      m.v.kernelSs = 1;
    },
  },
  {
    name: "an LDT kernel stack selector (no LDT): crashed",
    fast: false,
    setup: (m) => {
      m.v.kernelSs = 0x0f;
    },
  },
  {
    name: "the gate's CS made a not-present GDT entry: #GP(selector) bounced",
    fast: false,
    setup: (m) => {
      m.v.fastTrapCs = 0x0031;
    },
    steps: 3,
  },
  {
    name: "the gate's CS an LDT selector (no LDT): #GP bounced",
    fast: false,
    setup: (m) => {
      m.v.fastTrapCs = 0x000d;
    },
    steps: 3,
  },
  {
    name: "the gate's CS null: #GP bounced",
    fast: false,
    setup: (m) => {
      m.v.fastTrapCs = 1;
    },
    steps: 3,
  },
  {
    name: "the gate's CS Xen's ring-0 code: #GP bounced",
    fast: false,
    setup: (m) => {
      m.v.fastTrapCs = 0x0808;
    },
    steps: 3,
  },
  {
    name: "the gate's CS a data segment (the kernel's DS): #GP bounced",
    fast: false,
    setup: (m) => {
      m.v.fastTrapCs = 0x0821;
    },
    steps: 3,
  },
  {
    name: "the gate's offset in Xen's area: #GP(0) at the int",
    fast: false,
    setup: (m) => {
      m.v.fastTrapEip = 0xfc500000 | 0; // int32, as set_fast_trap stores it
    },
    steps: 3,
  },
  {
    name: "the gate's offset at an unmapped page: the frame pushed, #PF at the handler's fetch",
    fast: true,
    setup: (m) => {
      m.v.fastTrapEip = 0x40001000;
    },
    steps: 3,
  },
  {
    name: "a gate of DPL 1 from ring 3: #GP(vector) at the int",
    fast: false,
    setup: (m) => {
      m.v.fastTrapDpl = 1;
    },
    steps: 3,
  },
  {
    name: "the fast trap removed: #GP(vector) at the int",
    fast: false,
    setup: (m) => {
      m.v.fastTrap = 0;
    },
    steps: 3,
  },
  {
    name: "single-stepping (TF): the exit path",
    fast: false,
    setup: (m) => {
      m.hv.cpu.setFlags(m.hv.cpu.getFlags() | TF);
    },
    steps: 3,
  },
  {
    name: "int 0x80 at ring 1 (the handler's iret made int 0x80): frames on the ring-1 stack",
    fast: true,
    setup: (m) => {
      const c = m.hv.cpu;
      step(m); // into the handler (its iret, at ring 1)
      assert.equal(c.cpl, 1);
      const p = c.translate((c.segBase[1] + c.eip) | 0, false, false);
      c.mem8[p] = 0xcd;
      c.mem8[p + 1] = 0x80;
      c.invalidateCode(p, 2);
    },
    steps: 6,
  },
  {
    name: "int 0x80 at ring 1 with ESP 8 bytes into a page: the pushes, one by one",
    fast: false,
    setup: (m) => {
      const c = m.hv.cpu;
      step(m);
      const p = c.translate((c.segBase[1] + c.eip) | 0, false, false);
      c.mem8[p] = 0xcd;
      c.mem8[p + 1] = 0x80;
      c.invalidateCode(p, 2);
      c.regs[4] = ((c.regs[4] & ~0xfff) + 8) | 0;
    },
    steps: 1,
  },
];

describe("the fast trap inside the run against the exit path", () => {
  for (const c of cases)
    it(c.name, () => {
      const a = boot();
      const b = boot();
      b.hv.cpu.softIntHook = null;
      assert.deepEqual(machineState(a), machineState(b), "booted alike");
      c.setup?.(a);
      c.setup?.(b);
      const f0 = a.hv.fastTrapsInRun;
      const steps = 1 + (c.steps ?? 0);
      for (let i = 0; i < steps; i++) {
        step(a);
        step(b);
        assert.deepEqual(machineState(a), machineState(b), `after step ${i + 1}`);
        if (i === 0) assert.equal(a.hv.fastTrapsInRun - f0, c.fast ? 1 : 0, "taken by the hook");
      }
      assert.equal(b.hv.fastTrapsInRun, 0);
    });

  it("the whole loop: the same retired count and state with the interpreter, JS and wasm blocks", () => {
    const runs = (["js", "wasm", "interp"] as const).map((k) => {
      const m = boot(k === "interp" ? "js" : k);
      if (k === "interp") m.hv.cpu.blockThreshold = 0;
      const end = m.hv.cpu.retiredTotal + 150;
      while (m.hv.cpu.retiredTotal < end) {
        const exit = m.hv.cpu.run(end - m.hv.cpu.retiredTotal);
        if (exit === Exit.Exception) handleException(m.hv, m.v);
      }
      return { k, s: machineState(m), n: m.hv.fastTrapsInRun, blocks: m.hv.cpu.blockInsnsTotal };
    });
    for (const r of runs.slice(1)) {
      assert.deepEqual(r.s, runs[0].s, r.k);
      assert.equal(r.n, runs[0].n, r.k);
    }
    assert.ok(runs[0].n >= 35, `fast traps taken: ${runs[0].n}`);
  });
});
