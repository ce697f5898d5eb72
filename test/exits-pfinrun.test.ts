/**
 * The #PF bounced inside the CPU's run (traps.ts pageFaultInRun, the CPU's faultHook, charged
 * by Hypervisor.exitInRun) against the exit path it stands for (handleException: ptwr, LDT,
 * GDT, then reflectTrap + bounce in the run loop's turn). Whole runs of bench_exits (every
 * kind, and the #PF loop alone) with and without the hook, and with the interpreter, JS and
 * wasm blocks: the same virtual time, retired count, console and machine memory. Then steps
 * from the second #PF of its loop on edges put in two machines booted alike: registers,
 * caches, CPL, flags, CR2, retired count, domain state and memory equal after every step.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TI_IF } from "../src/public/arch_x86_32.js";
import { SharedInfo, VcpuInfo, VmAssistType } from "../src/public/xen.js";
import type { Vcpu } from "../src/xen/domain.js";
import type { Hypervisor } from "../src/xen/hypervisor.js";
import { bootBenchExits, machineState, sha, step } from "./support/exit-steps.js";

interface M {
  hv: Hypervisor;
  v: Vcpu;
  out: () => string;
}

function machine(cmdline: string, backend: "js" | "wasm" | "interp", hook: boolean): M {
  const m = bootBenchExits(cmdline, backend);
  if (!hook) m.hv.cpu.faultHook = null;
  return m;
}

function whole(m: M): unknown {
  return {
    now: m.hv.nowNs(),
    retired: m.hv.cpu.retiredTotal,
    cpuTimeNs: m.v.cpuTimeNs,
    out: m.out(),
    mem: sha(m.hv.mem.bytes),
  };
}

/** bench_exits' #PF loop with its first #PF delivered (by the exit path), stopped there. */
function atSecondFault(hook: boolean): M {
  const m = machine("n=50 rounds=1 only=page_fault", "js", hook);
  const cpu = m.hv.cpu;
  const h = cpu.faultHook;
  cpu.faultHook = () => {
    m.hv.requestStop();
    return false;
  };
  const r = m.hv.run(m.hv.nowNs() + 1e9);
  assert.equal(r.kind, "stopped", m.out());
  cpu.faultHook = h;
  return m;
}

interface Case {
  name: string;
  /** The hook bounces the next #PF. */
  fast: boolean;
  setup?: (m: M) => void;
}

const cases: Case[] = [
  { name: "the guest's handler (trap gate), its ring-1 stack", fast: true },
  {
    name: "an interrupt gate (TI_IF): events masked by the bounce",
    fast: true,
    setup: (m) => {
      m.v.trapFlags[14] |= TI_IF;
    },
  },
  {
    name: "an upcall pending, events unmasked",
    fast: true,
    setup: (m) => {
      const vi = m.v.domain.sharedInfoMfn * 4096 + SharedInfo.vcpu_data + VcpuInfo.SIZE * m.v.id;
      m.hv.cpu.physWrite8(vi + VcpuInfo.evtchn_upcall_pending, 1);
      m.hv.cpu.physWrite8(vi + VcpuInfo.evtchn_upcall_mask, 0);
    },
  },
  {
    name: "no handler (address 0): the exit path",
    fast: false,
    setup: (m) => {
      m.v.trapAddress[14] = 0;
    },
  },
  {
    name: "the handler's CS null: crashed",
    fast: false,
    setup: (m) => {
      m.v.trapCs[14] = 1;
    },
  },
  {
    name: "the handler's CS a not-present GDT entry: crashed",
    fast: false,
    setup: (m) => {
      m.v.trapCs[14] = 0x31;
    },
  },
  {
    name: "the handler's CS the kernel's DS: crashed",
    fast: false,
    setup: (m) => {
      m.v.trapCs[14] = 0x821;
    },
  },
  {
    name: "the handler's CS an LDT selector: the exit path",
    fast: false,
    setup: (m) => {
      m.v.trapCs[14] = 0x0d;
    },
  },
  {
    name: "the handler in Xen's area: bounced, then #GP at its fetch",
    fast: true,
    setup: (m) => {
      m.v.trapAddress[14] = 0xfc500000;
    },
  },
  {
    name: "the writable-page-table assist on (a not-present fault: propagated by the exit path alike)",
    fast: true,
    setup: (m) => {
      m.v.domain.vmAssist |= 1 << VmAssistType.writable_pagetables;
    },
  },
];

/** ESP moved at the fault itself, on the fault's first step: a hook on the CPU's first fault. */
const stackCases: Array<[string, boolean, (esp: number) => number]> = [
  [
    "the ring-1 stack 8 bytes into a page (the frame across two pages)",
    false,
    (esp) => ((esp & ~0xfff) + 8) | 0,
  ],
  ["the ring-1 stack at a page's start", true, (esp) => esp & ~0xfff],
  ["the ring-1 stack in Xen's area: crashed", false, () => 0xfc500000 | 0],
  ["the ring-1 stack at an unmapped page: crashed", false, () => 0x40001000],
];

describe("the #PF bounced inside the run against the exit path", () => {
  for (const only of ["page_fault", "null_hypercall"])
    it(`whole bench_exits runs (${only === "page_fault" ? "the #PF loop" : "every kind"}): hook on and off, interpreter, JS and wasm`, () => {
      const cmd = only === "page_fault" ? "n=3000 rounds=2 only=page_fault" : "n=600 batch=4 rounds=1";
      const runs = (
        [
          ["js", true],
          ["js", false],
          ["wasm", true],
          ["wasm", false],
          ["interp", true],
        ] as const
      ).map(([b, hook]) => {
        const m = machine(cmd, b, hook);
        const r = m.hv.run(5e9);
        assert.equal(r.kind, "shutdown", m.out());
        assert.match(m.out(), /BENCH done failures=0/);
        return { b, hook, w: whole(m), n: m.hv.pageFaultsInRun };
      });
      for (const r of runs.slice(1)) assert.deepEqual(r.w, runs[0].w, `${r.b} hook ${r.hook}`);
      for (const r of runs)
        assert.ok(r.hook ? r.n >= (only === "page_fault" ? 6000 : 600) : r.n === 0, `${r.b}: ${r.n}`);
    });

  for (const c of cases)
    it(c.name, () => {
      const a = atSecondFault(true);
      const b = atSecondFault(false);
      assert.deepEqual(machineState(a), machineState(b), "booted alike");
      c.setup?.(a);
      c.setup?.(b);
      const n0 = a.hv.pageFaultsInRun;
      for (let i = 0; i < 120; i++) {
        step(a);
        step(b);
        assert.deepEqual(machineState(a), machineState(b), `after step ${i + 1}`);
      }
      assert.equal(a.hv.pageFaultsInRun - n0 > 0, c.fast, "taken by the hook");
    });

  // Whole runs from an edge, not steps: a step's run ends after one instruction anyway, so
  // only a whole run sees where the hook must end it (exitInRun: an upcall to deliver).
  it("an upcall pending, events unmasked, in a whole run: delivered right after the bounce, as the exit path delivers it", () => {
    const ms = [atSecondFault(true), atSecondFault(false)];
    // Made pending at the CPU's next fault, before either path delivers it (pending at the
    // run's start, the run loop would deliver it before the guest runs at all).
    for (const m of ms) {
      const cpu = m.hv.cpu;
      const h = cpu.faultHook;
      let done = false;
      cpu.faultHook = () => {
        if (!done) {
          const vi = m.v.domain.sharedInfoMfn * 4096 + SharedInfo.vcpu_data + VcpuInfo.SIZE * m.v.id;
          cpu.physWrite8(vi + VcpuInfo.evtchn_upcall_pending, 1);
          cpu.physWrite8(vi + VcpuInfo.evtchn_upcall_mask, 0);
        }
        done = true;
        return h !== null ? h() : false;
      };
    }
    const n0 = ms[0].hv.pageFaultsInRun;
    for (const m of ms) {
      const r = m.hv.run(m.hv.nowNs() + 2e6);
      assert.notEqual(r.kind, "crashed", m.out());
    }
    assert.ok(ms[0].hv.pageFaultsInRun - n0 > 0, "taken by the hook");
    assert.deepEqual(machineState(ms[0]), machineState(ms[1]));
    assert.equal(ms[0].hv.nowNs(), ms[1].hv.nowNs());
  });

  for (const [name, fast, esp] of stackCases)
    it(name, () => {
      const ms = [atSecondFault(true), atSecondFault(false)];
      assert.deepEqual(machineState(ms[0]), machineState(ms[1]), "booted alike");
      // At the CPU's next fault, before either path delivers it.
      for (const m of ms) {
        const cpu = m.hv.cpu;
        const h = cpu.faultHook;
        let done = false;
        cpu.faultHook = () => {
          if (!done) cpu.regs[4] = esp(cpu.regs[4]);
          done = true;
          return h !== null ? h() : false;
        };
      }
      const n0 = ms[0].hv.pageFaultsInRun;
      for (let i = 0; i < 120; i++) {
        for (const m of ms) step(m);
        assert.deepEqual(machineState(ms[0]), machineState(ms[1]), `after step ${i + 1}`);
      }
      assert.equal(ms[0].hv.pageFaultsInRun - n0 > 0, fast, "taken by the hook");
    });
});
