/**
 * The switch-in reload of DS, ES, FS, GS skipped when it would change nothing
 * (src/xen/switch_segments.ts). Each input the reload reads (the descriptor's words, the GDT's
 * PTE and PDE, CR3, GDTR, the selector, the cache) is changed while the reload is kept, and the
 * switch-in must then leave the CPU exactly as a full reload would: a second, full reload
 * changes nothing, registers or memory. And in whole runs, a descriptor changed while its
 * vcpu is switched out reaches that vcpu, and only it.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { CpuContext } from "../src/cpu/context.js";
import { DS, ES, FS, GS } from "../src/cpu/regs.js";
import { launchDomain } from "../src/tools/launch.js";
import type { Vcpu } from "../src/xen/domain.js";
import { Hypervisor } from "../src/xen/hypervisor.js";
import { reloadSwitchedIn, switchSegmentStats } from "../src/xen/switch_segments.js";
import { reloadDataSegments } from "../src/xen/traps.js";
import { guestPath } from "./support/guests.js";

const AVL = 0x100000; // a descriptor's AVL bit (hi word): attr bit 12 in the cache, no other effect
const PAGE_ACCESSED = 0x20;

function machine(n = 2): { hv: Hypervisor; vcpus: Vcpu[] } {
  const hv = new Hypervisor({ memoryMiB: 24 * n + 16, onConsole: () => {} });
  const image = readFileSync(guestPath("bench_idle"));
  const vcpus = [];
  for (let i = 0; i < n; i++)
    vcpus.push(
      launchDomain(hv, { name: `idle${i}`, image, memoryMiB: 16, cmdline: "tick_ms=10" }).domain.vcpus[0],
    );
  hv.run(hv.nowNs() + 1e8);
  return { hv, vcpus };
}

/** The walk to selector sel's descriptor through cr3 and a GDT at gdtrBase: machine addresses. */
function walk(hv: Hypervisor, cr3: number, gdtrBase: number, sel: number) {
  const m = hv.cpu.mem32;
  const lin = (gdtrBase + (sel & ~7)) | 0;
  const pdeMa = (cr3 & ~0xfff) | ((lin >>> 20) & 0xffc);
  const pde = m[pdeMa >>> 2];
  const pteMa = (pde & ~0xfff) | ((lin >>> 10) & 0xffc);
  const pte = m[pteMa >>> 2];
  return { pdeMa, pde, pteMa, pte, ma: ((pte & ~0xfff) | (lin & 0xfff)) >>> 0 };
}

/** A copy of frame f in a free frame; returns the copy's frame number. */
function copyFrame(hv: Hypervisor, f: number): number {
  const c = hv.mem.allocFrame();
  assert.ok(c >= 0);
  hv.cpu.mem32.copyWithin(c << 10, f << 10, (f + 1) << 10);
  return c;
}

/** A copy of the frame holding DS's descriptor (walk w), the copy's descriptor with AVL set. */
function gdtCopyAvl(hv: Hypervisor, w: ReturnType<typeof walk>): number {
  const f = copyFrame(hv, w.pte >>> 12);
  hv.write32((f << 12) + (w.ma & 0xfff) + 4, hv.read32(w.ma + 4) | AVL);
  return f;
}

const segs = [ES, DS, FS, GS];
function segState(hv: Hypervisor): number[] {
  const c = hv.cpu;
  return [...segs.flatMap((s) => [c.segSel[s], c.segBase[s], c.segLimit[s], c.segAttr[s]]), ...c.regs, c.eip];
}

/** The current vcpu with its reload kept: one switch-in reloads (or keeps), the next keeps. */
function kept(hv: Hypervisor): Vcpu {
  const v = hv.current;
  assert.ok(v);
  reloadSwitchedIn(hv, v);
  const k = switchSegmentStats.kept;
  reloadSwitchedIn(hv, v);
  assert.equal(switchSegmentStats.kept, k + 1, "the reload is kept when nothing changed");
  return v;
}

/**
 * The switch-in after a change: then a full reload must change nothing (registers, segment
 * caches, memory). Returns the DS attributes after the switch-in.
 */
function switchInThenFull(hv: Hypervisor, v: Vcpu): number {
  reloadSwitchedIn(hv, v);
  const attr = hv.cpu.segAttr[DS];
  const state = segState(hv);
  const mem = new Uint8Array(hv.mem.bytes);
  reloadDataSegments(hv, v);
  assert.deepEqual(segState(hv), state, "a full reload after the switch-in changes no register");
  assert.ok(Buffer.from(mem).equals(Buffer.from(hv.mem.bytes)), "nor any memory");
  return attr;
}

describe("switch-in segment reload kept per vcpu", () => {
  it("is kept across the switches of idle domains, checked against the descriptors (invariants on)", () => {
    const { hv } = machine(3);
    hv.checkInvariantsAfterHypercall = true;
    const k = switchSegmentStats.kept;
    const r = switchSegmentStats.reloaded;
    hv.run(hv.nowNs() + 5e8);
    const kept = switchSegmentStats.kept - k;
    const reloaded = switchSegmentStats.reloaded - r;
    assert.ok(kept > 100 && reloaded < kept / 10, `kept ${kept}, reloaded ${reloaded}`);
  });

  it("a descriptor's words changed: reloaded", () => {
    const { hv } = machine();
    const v = kept(hv);
    const c = hv.cpu;
    const w = walk(hv, c.cr3, c.gdtrBase, c.segSel[DS]);
    hv.write32(w.ma + 4, hv.read32(w.ma + 4) | AVL);
    assert.equal(switchInThenFull(hv, v) & 0x1000, 0x1000);
  });

  it("the GDT page's PTE pointing at another frame: reloaded", () => {
    const { hv } = machine();
    const v = kept(hv);
    const c = hv.cpu;
    const w = walk(hv, c.cr3, c.gdtrBase, c.segSel[DS]);
    const f = gdtCopyAvl(hv, w);
    hv.write32(w.pteMa, (f << 12) | (w.pte & 0xfff));
    assert.equal(switchInThenFull(hv, v) & 0x1000, 0x1000);
  });

  it("the PDE pointing at another page table: reloaded", () => {
    const { hv } = machine();
    const v = kept(hv);
    const c = hv.cpu;
    const w = walk(hv, c.cr3, c.gdtrBase, c.segSel[DS]);
    const f = gdtCopyAvl(hv, w);
    const l1 = copyFrame(hv, w.pde >>> 12);
    hv.write32((l1 << 12) + (w.pteMa & 0xfff), (f << 12) | (w.pte & 0xfff));
    hv.write32(w.pdeMa, (l1 << 12) | (w.pde & 0xfff));
    assert.equal(switchInThenFull(hv, v) & 0x1000, 0x1000);
  });

  it("another CR3 (its PDE not yet accessed): reloaded, the walk sets the accessed bit", () => {
    const { hv } = machine();
    const v = kept(hv);
    const c = hv.cpu;
    const w = walk(hv, c.cr3, c.gdtrBase, c.segSel[DS]);
    const l2 = copyFrame(hv, c.cr3 >>> 12);
    const pdeMa = (l2 << 12) | (w.pdeMa & 0xfff);
    hv.write32(pdeMa, w.pde & ~PAGE_ACCESSED);
    c.cr3 = l2 << 12;
    switchInThenFull(hv, v);
    assert.equal(hv.read32(pdeMa) & PAGE_ACCESSED, PAGE_ACCESSED);
  });

  it("GDTR's base moved: reloaded (DS reads another entry)", () => {
    const { hv } = machine();
    const v = kept(hv);
    const before = hv.cpu.segAttr[DS];
    hv.cpu.gdtrBase = (hv.cpu.gdtrBase - 8) | 0;
    assert.notEqual(switchInThenFull(hv, v), before);
  });

  it("GDTR's limit below the selector: reloaded, so the failsafe callback nulls the data segments", () => {
    const { hv } = machine();
    const v = kept(hv);
    hv.cpu.gdtrLimit = (hv.cpu.segSel[DS] & ~7) - 1;
    switchInThenFull(hv, v);
    assert.equal(hv.cpu.segSel[DS], 0);
  });

  it("another selector with the same cache, its descriptor since changed: reloaded", () => {
    const { hv } = machine();
    const v = kept(hv);
    const c = hv.cpu;
    const x = walk(hv, c.cr3, c.gdtrBase, c.segSel[DS]);
    // Entry 280 (a guest entry within the limit) made a copy of DS's, loaded into DS.
    const y = (280 << 3) | (c.segSel[DS] & 3);
    const wy = walk(hv, c.cr3, c.gdtrBase, y);
    hv.write32(wy.ma, hv.read32(x.ma));
    hv.write32(wy.ma + 4, hv.read32(x.ma + 4));
    const [base, limit, attr] = [c.segBase[DS], c.segLimit[DS], c.segAttr[DS]];
    c.loadSegmentCache(DS, y, base, limit, attr);
    hv.write32(wy.ma + 4, hv.read32(wy.ma + 4) | AVL);
    assert.equal(switchInThenFull(hv, v) & 0x1000, 0x1000);
  });

  it("the same selector with another cache, the descriptor as kept: reloaded", () => {
    const { hv } = machine();
    const v = kept(hv);
    const c = hv.cpu;
    c.loadSegmentCache(DS, c.segSel[DS], c.segBase[DS], c.segLimit[DS], c.segAttr[DS] | 0x1000);
    assert.equal(switchInThenFull(hv, v) & 0x1000, 0);
  });

  it("a descriptor changed while its vcpu is switched out reaches that vcpu only", () => {
    const { hv, vcpus } = machine();
    hv.run(hv.nowNs() + 2e8);
    const k = switchSegmentStats.kept;
    hv.run(hv.nowNs() + 2e8);
    assert.ok(switchSegmentStats.kept > k, "switch-ins kept before the change");
    const out = vcpus.find((v) => v !== hv.current);
    assert.ok(out?.context);
    const ctx = out.context;
    const w = walk(hv, ctx.cr3, ctx.gdtrBase, ctx.segSel[DS]);
    hv.write32(w.ma + 4, hv.read32(w.ma + 4) | AVL);
    hv.run(hv.nowNs() + 2e8);
    for (const v of vcpus) {
      const attrs = [DS, ES, FS, GS].map((s) =>
        v === hv.current ? hv.cpu.segAttr[s] : (v.context?.segAttr[s] ?? 0),
      );
      assert.deepEqual(
        attrs.map((a) => a & 0x1000),
        v === out ? [0x1000, 0x1000, 0x1000, 0x1000] : [0, 0, 0, 0],
        `domain ${v.domain.id}`,
      );
    }
  });

  it("a switch restores every segment cache that differs from the CPU's in any field (CpuContext)", () => {
    const { hv } = machine(1);
    const cpu = hv.cpu;
    const ctx = new CpuContext();
    const fields = [
      ["segSel", 8],
      ["segBase", 0x1000],
      ["segLimit", 0x1000],
      ["segAttr", 0x1000],
    ] as const;
    for (const [field, bit] of fields) {
      ctx.save(cpu);
      const want = [cpu.segSel[DS], cpu.segBase[DS], cpu.segLimit[DS], cpu.segAttr[DS]];
      ctx[field][DS] ^= bit;
      want[fields.findIndex(([f]) => f === field)] ^= bit;
      ctx.restore(cpu);
      assert.deepEqual([cpu.segSel[DS], cpu.segBase[DS], cpu.segLimit[DS], cpu.segAttr[DS]], want, field);
      // The checks follow the cache: a read at offset 0 is at the base.
      assert.equal(cpu.segRead(DS, 0, 1), want[1], `${field}: the checks synced`);
      ctx[field][DS] ^= bit;
      ctx.restore(cpu);
    }
  });
});
