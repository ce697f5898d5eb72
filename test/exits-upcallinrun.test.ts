/**
 * Hypercalls and event upcalls taken inside the CPU's run (traps.ts hypercallInRun and
 * eventUpcallInRun, charged by Hypervisor.softExitInRun, the next turn's checks in
 * nextTurnInRun) against the exit path they stand for (the run returns at int 0x82, run()
 * charges and handles the exit, then its next turn's deliverEvents bounces to the callback).
 * Whole runs of bench_exits (the event loop alone, every kind, two domains sharing the CPU)
 * with and without the hook, interpreter, JS and wasm blocks: the same virtual time, retired
 * count, console and machine memory. Then whole runs from an edge put into two machines at
 * the same point of the event loop: the callback's CS bad or in the LDT, its address in
 * Xen's area, the ring-1 stack moved so the frame crosses a page or lands unmapped, upcalls
 * masked: the same state after the run, each taken by the path expected.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { SharedInfo, VcpuInfo } from "../src/public/xen.js";
import { launchDomain } from "../src/tools/launch.js";
import type { Vcpu } from "../src/xen/domain.js";
import { Hypervisor } from "../src/xen/hypervisor.js";
import { bootBenchExits, machineState, sha } from "./support/exit-steps.js";
import { guestPath } from "./support/guests.js";

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
    retired: m.hv.cpu.retired,
    cpuTimeNs: m.v.cpuTimeNs,
    out: m.out(),
    mem: sha(m.hv.mem.bytes),
  };
}

const backends = [
  ["js", true],
  ["js", false],
  ["wasm", true],
  ["wasm", false],
  ["interp", true],
  ["interp", false],
] as const;

/** bench_exits' event loop, some 40 upcalls in (taken by whichever path), stopped there. */
function inEventLoop(hook: boolean): M {
  const m = machine("n=400 rounds=1 only=event_upcall", "js", hook);
  for (let i = 0; i < 1000 && !m.out().includes("event_upcall begin"); i++) m.hv.run(m.hv.nowNs() + 1e5);
  assert.match(m.out(), /event_upcall begin/);
  m.hv.run(m.hv.nowNs() + 1e5);
  return m;
}

function vcpuInfo(m: M): number {
  return m.v.domain.sharedInfoMfn * 4096 + SharedInfo.vcpu_data + VcpuInfo.SIZE * m.v.id;
}

interface Case {
  name: string;
  /** Upcalls taken in the run after the edge. */
  inRun: boolean;
  setup: (m: M) => void;
}

/** ESP moved at the next send (int 0x82), before either path takes it. */
function atNextSend(m: M, esp: (esp: number) => number): void {
  const cpu = m.hv.cpu;
  const h = cpu.faultHook;
  let done = false;
  const move = (): void => {
    if (!done && cpu.exitSoft) cpu.regs[4] = esp(cpu.regs[4]);
    done ||= cpu.exitSoft;
  };
  if (h !== null)
    cpu.faultHook = () => {
      move();
      return h();
    };
  else
    cpu.faultHook = () => {
      move();
      return false;
    };
}

const cases: Case[] = [
  { name: "nothing changed", inRun: true, setup: () => {} },
  {
    name: "the callback's CS a not-present GDT entry: crashed",
    inRun: false,
    setup: (m) => void (m.v.eventCs = 0x31),
  },
  {
    name: "the callback's CS an LDT selector (no LDT): crashed",
    inRun: false,
    setup: (m) => void (m.v.eventCs = 0x0d),
  },
  { name: "the callback's CS null: crashed", inRun: false, setup: (m) => void (m.v.eventCs = 1) },
  {
    name: "the callback's CS the kernel's DS: crashed",
    inRun: false,
    setup: (m) => void (m.v.eventCs = 0x821),
  },
  {
    name: "the callback in Xen's area: bounced, then #GP at its fetch",
    inRun: true,
    setup: (m) => void (m.v.eventEip = 0xfc500000 | 0),
  },
  {
    name: "upcalls masked by the host: pending kept, none delivered",
    inRun: false,
    setup: (m) => m.hv.cpu.physWrite8(vcpuInfo(m) + VcpuInfo.evtchn_upcall_mask, 1),
  },
  {
    name: "the ring-1 stack 8 bytes into a page at a send (the frame across two pages)",
    inRun: false,
    setup: (m) => atNextSend(m, (esp) => ((esp & ~0xfff) + 8) | 0),
  },
  {
    name: "the ring-1 stack at a page's start at a send",
    inRun: true,
    setup: (m) => atNextSend(m, (esp) => esp & ~0xfff),
  },
  {
    name: "the ring-1 stack at an unmapped page at a send: crashed",
    inRun: false,
    setup: (m) => atNextSend(m, () => 0x40001000),
  },
  {
    name: "the ring-1 stack in Xen's area at a send: crashed",
    inRun: false,
    setup: (m) => atNextSend(m, () => 0xfc500000 | 0),
  },
];

describe("hypercalls and event upcalls inside the run against the exit path", () => {
  for (const [what, cmd] of [
    ["the event loop", "n=2000 rounds=2 only=event_upcall"],
    ["every kind", "n=600 batch=4 rounds=1"],
  ] as const)
    it(`whole bench_exits runs (${what}): hook on and off, interpreter, JS and wasm`, () => {
      const runs = backends.map(([b, hook]) => {
        const m = machine(cmd, b, hook);
        const r = m.hv.run(5e9);
        assert.equal(r.kind, "shutdown", m.out());
        assert.match(m.out(), /BENCH done failures=0/);
        return { b, hook, w: whole(m), u: m.hv.upcallsInRun, h: m.hv.hypercallsInRun };
      });
      for (const r of runs.slice(1)) assert.deepEqual(r.w, runs[0].w, `${r.b} hook ${r.hook}`);
      const n = what === "the event loop" ? 4000 : 600;
      for (const r of runs) {
        if (r.hook) assert.ok(r.u >= n - 2 && r.h >= n, `${r.b}: ${r.u} upcalls, ${r.h} hypercalls`);
        else assert.ok(r.u === 0 && r.h === 0, `${r.b}: ${r.u}, ${r.h}`);
      }
    });

  for (const cpus of [1, 2])
    it(`two domains on ${cpus} physical CPU(s) (each its event loop; slices, the scheduler's turns, the CPUs' order): hook on and off`, () => {
      const runs = [true, false].map((hook) => {
        let out = "";
        const hv = new Hypervisor({
          memoryMiB: 40,
          cpus,
          onConsole: (_d, b) => void (out += Buffer.from(b).toString("latin1")),
        });
        if (!hook) hv.cpu.faultHook = null;
        const image = readFileSync(guestPath("bench_exits"));
        const ds = ["a", "b"].map(
          (name) =>
            launchDomain(hv, { name, image, memoryMiB: 8, cmdline: "n=3000 rounds=2 only=event_upcall" })
              .domain,
        );
        // On two CPUs, one domain each: the run loop picks the CPU behind (picksOther).
        if (cpus === 2) hv.sched.migrate(ds[1].vcpus[0], 1);
        // Each domain's shutdown ends a run(); on until both are done.
        for (let i = 0; i < 100 && (out.match(/BENCH done/g) ?? []).length < 2; i++) {
          const r = hv.run(hv.nowNs() + 1e8);
          assert.notEqual(r.kind, "crashed", out);
        }
        return {
          w: {
            now: hv.nowNs(),
            retired: hv.cpu.retired,
            out,
            mem: sha(hv.mem.bytes),
            t: ds.map((d) => d.vcpus[0].cpuTimeNs),
          },
          u: hv.upcallsInRun,
        };
      });
      assert.deepEqual(runs[0].w, runs[1].w);
      // On two CPUs the one behind is picked after nearly every exit (the run ends there).
    assert.ok(runs[0].u > (cpus === 1 ? 1000 : 0) && runs[1].u === 0, `${runs[0].u} ${runs[1].u}`);
      assert.match(
        String((runs[0].w as { out: string }).out),
        /BENCH done failures=0[\s\S]*BENCH done failures=0/,
      );
    });

  for (const c of cases)
    it(`from an edge in the event loop, a whole run: ${c.name}`, () => {
      const ms = [inEventLoop(true), inEventLoop(false)];
      assert.deepEqual(machineState(ms[0]), machineState(ms[1]), "stopped alike");
      assert.equal(ms[0].hv.nowNs(), ms[1].hv.nowNs());
      for (const m of ms) c.setup(m);
      const u0 = ms[0].hv.upcallsInRun;
      for (const m of ms) m.hv.run(m.hv.nowNs() + 2e6);
      assert.deepEqual(machineState(ms[0]), machineState(ms[1]));
      assert.equal(ms[0].hv.nowNs(), ms[1].hv.nowNs());
      assert.equal(ms[0].out(), ms[1].out());
      assert.equal(
        ms[0].hv.upcallsInRun - u0 > 0,
        c.inRun,
        `upcalls in the run: ${ms[0].hv.upcallsInRun - u0}`,
      );
    });
});
