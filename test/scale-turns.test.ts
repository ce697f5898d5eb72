/**
 * The run loop's per-turn paths trimmed for idle domains (issue 16, scale), each against what
 * it replaced, with two idle domains beside a hashed victim:
 * - the scheduler's indexed loops over the physical CPUs: pickCpu (the CPU furthest behind,
 *   the lowest id on ties) and horizon, checked at every call of a three-CPU run against the
 *   scans they replace, each CPU picked and each bounding another's horizon;
 * - the machine interrupt controller's next periodic edge, asked by the run loop only when a
 *   periodic device is attached: with one attached, every edge is seen at its due time;
 * - a region's call into a page the switch's TLB flush dropped (Cpu.hopFetch walks it when the
 *   run loop's fetch would): the same run as with every crossing back in the run loop
 *   (linkPages off), retired counts, virtual time and every domain's frames, and the idle
 *   tick's two calls into other pages go on in the region; and never at a run's end, where the
 *   run loop would not fetch (a loop calling into a page whose accessed bit it clears and whose
 *   TLB entry it drops, in slices of 1 to 16: the PTE after every slice as the interpreter's);
 * - the switch-in's TLB refill (Cpu.tlbRefill): two data pages of a switched-out domain swapped
 *   (PTEs and contents) at each of its switch-outs, the run the same as unswapped and as
 *   without the refill (retired counts, virtual time, CPU time, frames), every swapped page
 *   refilled with its new frame.
 * Mutations (dist copy), each failing it: pickCpu from index 2, or taking the last of equals;
 * horizon from index 1; the run loop never asking the periodic edge (54 of 200 edges seen);
 * hopFetch never walking (0 hops walked); hopFetch walking at the run's end too; the switch-in
 * restoring the entries the switch-out held (idle1 runs on through the swapped frames and stops).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { Cpu } from "../src/cpu/cpu.js";
import { CR0_PG, ESP, Exit } from "../src/cpu/regs.js";
import { launchDomain } from "../src/tools/launch.js";
import type { Domain } from "../src/xen/domain.js";
import { Hypervisor } from "../src/xen/hypervisor.js";
import type { PhysicalCpu } from "../src/xen/scheduler.js";
import { guestPath } from "./support/guests.js";
import { frameHashes, launchVictim } from "./support/victim.js";

function machine(cpus: number) {
  const out = new Map<Domain, string>();
  const hv = new Hypervisor({
    memoryMiB: 64,
    cpus,
    onConsole: (d, b) => void out.set(d, (out.get(d) ?? "") + Buffer.from(b).toString("latin1")),
  });
  const victim = launchVictim({ hv, out });
  const before = frameHashes(hv, victim.pages);
  const image = readFileSync(guestPath("bench_idle"));
  const idle = [0, 1].map(
    (i) => launchDomain(hv, { name: `idle${i}`, image, memoryMiB: 16, cmdline: "tick_ms=1" }).domain,
  );
  const victimIntact = () => {
    assert.deepEqual(frameHashes(hv, victim.pages), before, "the victim's frames");
    assert.equal((out.get(victim) ?? "").split("\n").length, 2, "the victim printed nothing more");
  };
  return { hv, idle, victimIntact };
}

/** What a run leaves: instructions retired, virtual time, each idle domain's CPU time and frames. */
function outcome(hv: Hypervisor, idle: Domain[]) {
  return {
    retired: hv.cpu.retiredTotal,
    now: hv.nowNs(),
    cpuTimeNs: idle.map((d) => d.vcpus[0].cpuTimeNs),
    frames: idle.map((d) => frameHashes(hv, d.pages)),
  };
}

describe("scale: the run loop's per-turn paths", () => {
  it("pickCpu and horizon answer as the scans they replace, on three CPUs", () => {
    const { hv, idle, victimIntact } = machine(3);
    // CPU 0 the victim's and a ticker's, CPU 1 empty (its clock jumps), CPU 2 a ticker's.
    hv.sched.migrate(idle[1].vcpus[0], 2);
    const sched = hv.sched;
    // scheduler.ts QUANTUM_NS (1 ms): how far a CPU may run past the slowest other one.
    const quantum = hv.clock.cyclesAt(1_000_000);
    const pick = sched.pickCpu.bind(sched);
    const horizon = sched.horizon.bind(sched);
    let picks = 0;
    let ties = 0;
    const picked = [0, 0, 0];
    let horizons = 0;
    /** By CPU: how often it bound another CPU's horizon (its clock + the quantum the least). */
    const boundBy = [0, 0, 0];
    sched.pickCpu = () => {
      // The scan it replaced: the first CPU with the fewest cycles.
      let want = sched.pcpus[0];
      for (const p of sched.pcpus) if (p.cycles < want.cycles) want = p;
      const got = pick();
      assert.equal(got.id, want.id, "pickCpu: the CPU the scan picks");
      picks++;
      picked[got.id]++;
      if (sched.pcpus.some((p) => p !== got && p.cycles === got.cycles)) ties++;
      return got;
    };
    sched.horizon = (p: PhysicalCpu) => {
      let want = sched.nextEvent(p);
      let by = -1;
      for (const o of sched.pcpus) {
        const h = Math.max(o.cycles, p.cycles) + quantum;
        if (o !== p && h < want) {
          want = h;
          by = o.id;
        }
      }
      const got = horizon(p);
      assert.equal(got, want, `horizon of CPU ${p.id}`);
      horizons++;
      if (by >= 0) boundBy[by]++;
      return got;
    };
    const ran = idle.map((d) => d.vcpus[0].cpuTimeNs);
    hv.run(hv.nowNs() + 200e6);
    // Each ticker ran through the run (1 ms ticks: ~200 wakeups each).
    for (const [i, d] of idle.entries()) assert.ok(d.vcpus[0].cpuTimeNs > ran[i], `${d.name} ran`);
    assert.ok(picks > 300, `${picks} picks`);
    assert.ok(ties > 10, `${ties} picks among CPUs at the same cycle`);
    for (let i = 0; i < 3; i++) assert.ok(picked[i] > 50, `CPU ${i} picked ${picked[i]} times`);
    assert.ok(horizons > 300, `${horizons} horizons`);
    for (let i = 0; i < 3; i++)
      assert.ok(boundBy[i] > 10, `CPU ${i} bound another's horizon ${boundBy[i]} times`);
    victimIntact();
  });

  it("a periodic device's edge ends the turn at its due time (the horizon asks it only when one is attached)", () => {
    const { hv, victimIntact } = machine(1);
    const irq = hv.irq;
    const LINE = 5;
    const PERIOD_NS = 250_000;
    irq.attachPeriodic(LINE, PERIOD_NS, hv.nowNs());
    irq.startup(LINE);
    const tick = irq.tick.bind(irq);
    let edges = 0;
    let worst = 0;
    irq.tick = (nowNs: number) => {
      const due = irq.nextDueNs();
      if (nowNs >= due) {
        edges++;
        worst = Math.max(worst, nowNs - due);
      }
      tick(nowNs);
    };
    hv.run(hv.nowNs() + 50e6);
    // Nobody bound the line: each edge is acked and ended as spurious, the next one due.
    assert.ok(edges >= 195, `${edges} edges seen in 50 ms of 250 us periods`);
    // Seen at the turn that reaches it: within a cycle (cyclesAt rounds up to whole cycles).
    assert.ok(worst < hv.clock.ns(1) + 1e-6, `an edge seen ${worst} ns after its due time`);
    victimIntact();
  });

  it("a region's call into a page missing from the TLB goes on in the region, as the run loop's fetch would go", () => {
    const run = (linkPages: boolean) => {
      const { hv, idle, victimIntact } = machine(1);
      const cpu = hv.cpu;
      cpu.linkPages = linkPages;
      // The switch-in's refill (Cpu.tlbRefill) enters the pages again before the upcall calls
      // into them: off here, so each switch loses them, as the hop's walk is for.
      cpu.tlbRefill = () => {};
      const hop = cpu.hopFetch.bind(cpu);
      let walked = 0;
      cpu.hopFetch = () => {
        const lin = (cpu.segBase[1] + cpu.eip) | 0;
        const missed = (cpu.tlb[lin >>> 12] & cpu.rdMask) === 0;
        const e = hop();
        if (missed && e !== 0) walked++;
        return e;
      };
      hv.run(hv.nowNs() + 100e6);
      const r0 = cpu.regionRuns;
      const t0 = idle.map((d) => d.vcpus[0].cpuTimeNs);
      hv.run(hv.nowNs() + 100e6);
      victimIntact();
      return {
        ...outcome(hv, idle),
        ticks: idle.map((d, i) => d.vcpus[0].cpuTimeNs - t0[i]),
        regionRuns: cpu.regionRuns - r0,
        walked,
      };
    };
    const linked = run(true);
    const unlinked = run(false);
    assert.equal(linked.retired, unlinked.retired, "instructions retired");
    assert.equal(linked.now, unlinked.now, "virtual time");
    assert.deepEqual(linked.cpuTimeNs, unlinked.cpuTimeNs, "the domains' CPU time");
    for (let i = 0; i < 2; i++) assert.deepEqual(linked.frames[i], unlinked.frames[i], `idle${i}'s frames`);
    // 1 ms ticks, 100 ms: ~100 switches each, every one flushing the TLB.
    assert.ok(linked.walked >= 300, `${linked.walked} hops walked a page the TLB had lost`);
    assert.equal(unlinked.walked, 0, "no hop with linkPages off");
    // Two region entries a tick (the upcall's and the block's run), not four.
    assert.ok(linked.regionRuns <= 2.2 * 200, `${linked.regionRuns} region runs for ~200 ticks`);
  });

  it("a switch-in refills the TLB from the tables as they are: two pages swapped while out are read swapped", () => {
    /**
     * At every switch-out of idle1 a host writer (as dom0's foreign mmu_update would, or a
     * balloon or grant path) swaps two of its data pages the TLB held, PTE frames and contents
     * alike: the guest reads and writes the same bytes at the same addresses, through the
     * other frame. A refill from anything kept (or a CR3 load that kept the TLB) reads and
     * writes the frame the page had before the swap.
     */
    const run = (refill: boolean, swap: boolean) => {
      const { hv, idle, victimIntact } = machine(1);
      const cpu = hv.cpu;
      const ctx = idle[1].vcpus[0].context;
      assert.ok(ctx !== null);
      const kept = ctx as unknown as { words: Int32Array; pages: number };
      const pteAddr = (va: number) => {
        const pde = cpu.physRead32((ctx.cr3 & ~0xfff) | ((va >>> 20) & 0xffc));
        return (pde & ~0xfff) | ((va >>> 10) & 0xffc);
      };
      let pair: number[] = [];
      let swaps = 0;
      let refilledNew = 0;
      const save = ctx.save.bind(ctx);
      ctx.save = (c: Cpu) => {
        save(c);
        if (!swap) return;
        if (pair.length === 0) {
          // Two data pages of the guest's own the TLB held: writable, no decoded code.
          const pages = Array.from(kept.words.subarray(48, 48 + kept.pages));
          pair = pages
            .filter((vp) => vp < 0xf0000 && (cpu.physRead32(pteAddr(vp << 12)) & 0x43) === 0x43)
            .filter((vp) => cpu.codePage[cpu.physRead32(pteAddr(vp << 12)) >>> 12] === 0)
            .slice(0, 2);
          if (pair.length < 2) return;
        }
        const [pa, qa] = pair.map((vp) => pteAddr(vp << 12));
        const [p, q] = [cpu.physRead32(pa), cpu.physRead32(qa)];
        const [fp, fq] = [p >>> 12, q >>> 12];
        for (let i = 0; i < 1024; i++) {
          const t = cpu.mem32[(fp << 10) + i];
          cpu.mem32[(fp << 10) + i] = cpu.mem32[(fq << 10) + i];
          cpu.mem32[(fq << 10) + i] = t;
        }
        cpu.physWrite32(pa, (q & ~0xfff) | (p & 0xfff));
        cpu.physWrite32(qa, (p & ~0xfff) | (q & 0xfff));
        swaps++;
      };
      if (!refill) cpu.tlbRefill = () => {};
      else {
        const fill = cpu.tlbRefill.bind(cpu);
        cpu.tlbRefill = (w, at, n) => {
          fill(w, at, n);
          if (cpu.cr3 !== ctx.cr3 || pair.length < 2) return;
          for (const vp of pair) {
            const e = cpu.tlb[vp];
            if (e === 0) continue;
            assert.equal(
              e >>> 12,
              cpu.physRead32(pteAddr(vp << 12)) >>> 12,
              "a refilled page's frame is its PTE's",
            );
            refilledNew++;
          }
        };
      }
      hv.run(hv.nowNs() + 150e6);
      victimIntact();
      return {
        ...outcome(hv, idle),
        swaps,
        refilledNew,
      };
    };
    const plain = run(true, false);
    const swapped = run(true, true);
    const flushed = run(false, true);
    // 1 ms ticks for 150 ms: a switch-out of idle1 each.
    assert.ok(swapped.swaps >= 100, `${swapped.swaps} swaps`);
    assert.ok(swapped.refilledNew >= 150, `${swapped.refilledNew} swapped pages refilled`);
    for (const r of [swapped, flushed]) {
      assert.equal(r.retired, plain.retired, "instructions retired");
      assert.equal(r.now, plain.now, "virtual time");
      assert.deepEqual(r.cpuTimeNs, plain.cpuTimeNs, "the domains' CPU time");
    }
    for (let i = 0; i < 2; i++) assert.deepEqual(swapped.frames[i], flushed.frames[i], `idle${i}'s frames`);
    assert.deepEqual(swapped.frames[0], plain.frames[0], "idle0's frames");
  });

  it("a hop walks only where the run loop would fetch next: never at the run's end", () => {
    const PD = 0x80000;
    const PT = 0x81000;
    const V = 0x5000;
    const N = 300;
    const le = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
    const pteV = PT + (V >>> 12) * 4;
    // 0x1000 mov ecx,N; loop: and dword [pteV],~0x20 (A cleared); invlpg [V]; call V; dec ecx;
    // jnz loop; hlt. V: add eax,ecx; ret.
    const code = [
      [0xb9, ...le(N)],
      [0x81, 0x25, ...le(pteV), ...le(~0x20 >>> 0)],
      [0x0f, 0x01, 0x3d, ...le(V)],
      [0xe8, ...le((V - 0x101b) >>> 0)],
      [0x49, 0x75, (0x1005 - 0x101e) & 0xff, 0xf4],
    ].flat();
    const run = (linked: boolean, slice: number) => {
      const cpu = new Cpu(new Uint8Array(1 << 20));
      cpu.resetFlat32();
      const mem = new DataView(cpu.mem8.buffer);
      mem.setUint32(PD, PT | 3, true);
      for (let p = 0; p < 256; p++) mem.setUint32(PT + p * 4, (p << 12) | 3, true);
      cpu.mem8.set(code, 0x1000);
      cpu.mem8.set([0x01, 0xc8, 0xc3], V);
      cpu.setCr3(PD);
      cpu.setCr0(cpu.cr0 | CR0_PG);
      cpu.eip = 0x1000;
      cpu.regs[ESP] = 0x9000;
      cpu.blockThreshold = linked ? 2 : 0;
      cpu.regionThreshold = linked ? 2 : 0;
      const after: number[] = [];
      for (let i = 0; i < 10_000; i++) {
        const exit = cpu.run(slice);
        after.push(cpu.retiredTotal, cpu.eip, cpu.regs[0], mem.getUint32(pteV, true), cpu.cr2);
        if (exit !== Exit.Budget) break;
      }
      return { after, hops: cpu.regionHops };
    };
    let hops = 0;
    for (let slice = 1; slice <= 16; slice++) {
      const a = run(false, slice);
      const b = run(true, slice);
      assert.deepEqual(b.after, a.after, `slices of ${slice}: retired, EIP, EAX, V's PTE, CR2 after each`);
      hops += b.hops;
    }
    assert.ok(hops > 1000, `${hops} hops into the page the loop drops from the TLB`);
  });
});
