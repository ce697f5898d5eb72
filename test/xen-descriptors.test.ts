/**
 * check_descriptor (semantics.md §3.1, abi.md §3.4) and descriptor-page validation (§1.3):
 * which guest descriptors Xen accepts, and how over-long segments are truncated in place.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Cpu } from "../src/cpu/cpu.js";
import { CR0_PG } from "../src/cpu/regs.js";
import { checkDescriptor, type Descriptor } from "../src/xen/descriptor_tables.js";
import { readDescriptor } from "../src/xen/descriptors.js";
import { PGT_gdt_page, PGT_ldt_page, PGT_type_mask, PGT_validated } from "../src/xen/frame_table.js";
import { Hypervisor } from "../src/xen/hypervisor.js";

/** A code/data descriptor from its fields. access = P|DPL|S|type byte; flags = G|D|0|AVL nibble. */
function seg(base: number, limitField: number, access: number, flags: number): Descriptor {
  return {
    lo: (((base & 0xffff) << 16) | (limitField & 0xffff)) >>> 0,
    hi:
      ((base & 0xff000000) |
        ((flags & 0xf) << 20) |
        (limitField & 0xf0000) |
        (access << 8) |
        ((base >>> 16) & 0xff)) >>>
      0,
  };
}

/** A call gate to sel:offset with the given DPL (and extra high-word bits). */
function gate(sel: number, offset: number, dpl: number, extra = 0): Descriptor {
  return {
    lo: ((sel << 16) | (offset & 0xffff)) >>> 0,
    hi: ((offset & 0xffff0000) | 0x8000 | (dpl << 13) | 0xc00 | extra) >>> 0,
  };
}

const limitField = (d: Descriptor) => (d.lo & 0xffff) | (d.hi & 0xf0000);
const G = 0xc; // G=1, D=1
const RING1_CODE = 0xba;
const RING1_DATA = 0xb2;
const RING3_DATA = 0xf2;
const RING1_DATA_DOWN = 0xb6;
const RING1_CODE_CONFORMING = 0xbe;

function check(d: Descriptor): { ok: boolean; d: Descriptor } {
  const c = { ...d };
  return { ok: checkDescriptor(c), d: c };
}

describe("check_descriptor (semantics.md §3.1)", () => {
  it("accepts any not-present descriptor unchanged", () => {
    const d = { lo: 0xffffffff, hi: 0xffff7fff };
    assert.deepEqual(check(d), { ok: true, d });
    assert.deepEqual(check({ lo: 0, hi: 0 }), { ok: true, d: { lo: 0, hi: 0 } });
  });

  it("rejects DPL 0 code, data and gates", () => {
    assert.equal(check(seg(0, 0xfff, 0x9a, G)).ok, false);
    assert.equal(check(seg(0, 0xfff, 0x92, G)).ok, false);
    assert.equal(check(gate(0x0819, 0x1000, 0)).ok, false);
  });

  it("accepts Xen's flat ring-1 and ring-3 descriptors unchanged", () => {
    for (const hi of [0x00cfba00, 0x00cfb200, 0x00cffa00, 0x00cff200]) {
      const d = { lo: 0x0000c3ff, hi };
      assert.deepEqual(check(d), { ok: true, d });
    }
  });

  it("truncates a 4 GiB expand-up segment to end at 0xFC400000", () => {
    const r = check(seg(0, 0xfffff, RING1_DATA, G));
    assert.equal(r.ok, true);
    assert.deepEqual(r.d, { lo: 0x0000c3ff, hi: 0x00cfb200 });
  });

  it("truncates code (conforming too) like expand-up data", () => {
    assert.equal(limitField(check(seg(0, 0xfffff, RING1_CODE, G)).d), 0xfc3ff);
    assert.equal(limitField(check(seg(0, 0xfffff, RING1_CODE_CONFORMING, G)).d), 0xfc3ff);
  });

  it("truncates a segment whose base + limit wraps", () => {
    const r = check(seg(0x80000000, 0xfffff, RING3_DATA, G));
    assert.equal(r.ok, true);
    assert.equal(limitField(r.d), 0x7c3ff);
  });

  it("accepts a segment ending exactly at 0xFC400000, truncates one a page longer", () => {
    const exact = seg(0xfc3fe000, 1, RING1_DATA, G);
    assert.deepEqual(check(exact), { ok: true, d: exact });
    const longer = check(seg(0xfc3fe000, 2, RING1_DATA, G));
    assert.equal(longer.ok, true);
    assert.equal(limitField(longer.d), 1);
  });

  it("refuses an over-long byte-granular segment (truncation needs G=1)", () => {
    assert.equal(check(seg(0xfc3f0000, 0xfffff, RING1_DATA, 0x4)).ok, false);
    const fits = seg(0xfc300000, 0xfffff, RING1_DATA, 0x4);
    assert.deepEqual(check(fits), { ok: true, d: fits });
  });

  it("refuses a base at or above 0xFC3FF000", () => {
    assert.equal(check(seg(0xfc3ff000, 0, RING1_DATA, G)).ok, false);
    assert.equal(check(seg(0xfc000000 + 0x3ff000, 0, RING1_DATA, 0)).ok, false);
    assert.equal(check(seg(0xff400000, 0, RING1_DATA, G)).ok, false);
    assert.equal(check(seg(0xfc3fe000, 0, RING1_DATA, G)).ok, true);
  });

  it("truncates an expand-down segment that does not wrap so that it does", () => {
    const r = check(seg(0x10000000, 0x10, RING1_DATA_DOWN, G));
    assert.equal(r.ok, true);
    // New lowest offset 2^32 - 0x10000000: the segment covers [base & 0xfff, base) only.
    assert.equal(limitField(r.d), 0xeffff);
  });

  it("accepts an expand-down segment that wraps (limit 0xFFFFF with G=1 gives no access)", () => {
    const d = seg(0x10000000, 0xfffff, RING1_DATA_DOWN, G);
    assert.deepEqual(check(d), { ok: true, d });
  });

  it("refuses an expand-down segment needing truncation without G", () => {
    assert.equal(check(seg(0x10000000, 0x10, RING1_DATA_DOWN, 0x4)).ok, false);
  });

  it("accepts call gates to the flat kernel CS or a valid selector", () => {
    assert.equal(check(gate(0x0819, 0x1000, 1)).ok, true);
    assert.equal(check(gate(0x0819, 0x1000, 3)).ok, true);
    assert.equal(check(gate(0x0009, 0x1000, 3)).ok, true, "GDT selector 1, RPL 1");
    assert.equal(check(gate(0x000d, 0x1000, 3)).ok, true, "LDT selector 1, RPL 1");
  });

  it("refuses call gates to ring-0 or reserved selectors, or with reserved bits", () => {
    assert.equal(check(gate(0x0808, 0x1000, 3)).ok, false, "Xen ring-0 CS");
    assert.equal(check(gate(0x0008, 0x1000, 3)).ok, false, "RPL 0");
    assert.equal(check(gate(0x000b, 0x1000, 3)).ok, false, "RPL 3");
    assert.equal(check(gate(0x0821, 0x1000, 3)).ok, false, "reserved GDT index 260");
    assert.equal(check(gate(0x0939, 0x1000, 3)).ok, false, "reserved GDT index 295");
    assert.equal(check(gate(0x0941, 0x1000, 3)).ok, true, "GDT index 296");
    assert.equal(check(gate(0x0819, 0x1000, 3, 0x20)).ok, false, "bit 5 of the high word");
    assert.equal(check(gate(0x0819, 0x1000, 3, 0x1f)).ok, true, "parameter count");
  });

  it("refuses every other system descriptor", () => {
    for (const type of [0x1, 0x2, 0x3, 0x4, 0x5, 0x6, 0x7, 0x9, 0xb, 0xe, 0xf]) {
      const d = { lo: 0x08190000, hi: (0xa000 | (type << 8)) >>> 0 };
      assert.equal(check(d).ok, false, `type ${type}`);
    }
  });
});

describe("descriptor pages (semantics.md §1.3)", () => {
  function setup() {
    const hv = new Hypervisor({ memoryMiB: 16 });
    const d = hv.createDomain("t", 16);
    const pages = [...d.pages];
    for (const f of pages) hv.mem.zeroFrame(f);
    return { hv, d, frame: pages[0] };
  }
  const put = (hv: Hypervisor, f: number, i: number, x: Descriptor) => {
    hv.mem.write32(f * 4096 + i * 8, x.lo);
    hv.mem.write32(f * 4096 + i * 8 + 4, x.hi);
  };

  it("a frame becomes a GDT page only if every descriptor passes", () => {
    const { hv, d, frame } = setup();
    put(hv, frame, 511, seg(0, 0xfff, 0x92, G));
    assert.equal(hv.mm.getPageAndType(frame, d.id, PGT_gdt_page), false);
    assert.equal(hv.frames.typeInfo[frame], 0, "a failed validation leaves type none");
    put(hv, frame, 511, seg(0, 0xfff, RING1_DATA, G));
    assert.equal(hv.mm.getPageAndType(frame, d.id, PGT_gdt_page), true);
    assert.equal(hv.frames.typeInfo[frame] & PGT_type_mask, PGT_gdt_page);
    assert.ok(hv.frames.typeInfo[frame] & PGT_validated);
  });

  it("validation truncates over-long segments in the frame itself", () => {
    const { hv, d, frame } = setup();
    put(hv, frame, 3, seg(0, 0xfffff, RING3_DATA, G));
    assert.equal(hv.mm.getPageAndType(frame, d.id, PGT_ldt_page), true);
    assert.equal(hv.mem.read32(frame * 4096 + 24), 0x0000c3ff);
    assert.equal(hv.mem.read32(frame * 4096 + 28), 0x00cff200);
  });

  it("a frame mapped writable (writable type) cannot become a descriptor page", () => {
    const { hv, d, frame } = setup();
    assert.ok(hv.mm.getPageAndType(frame, d.id, 7 << 29));
    assert.equal(hv.mm.getPageAndType(frame, d.id, PGT_gdt_page), false);
  });
});

describe("readDescriptor through the guest's page tables", () => {
  const PD = 0x100000;
  const PT = 0x101000;
  const ACCESSED = 0x20;
  /** Paging on, GDT at 0x5ff4 (selector 8 straddles pages 5 and 6, 0x10 is in page 6). */
  function gdt(page5: boolean, page6: boolean) {
    const mem = new Uint8Array(1 << 22);
    const dv = new DataView(mem.buffer);
    const cpu = new Cpu(mem);
    cpu.resetFlat32();
    dv.setUint32(PD, PT | 3, true);
    if (page5) dv.setUint32(PT + 5 * 4, 0x5000 | 1, true);
    if (page6) dv.setUint32(PT + 6 * 4, 0x6000 | 1, true);
    for (let i = 0; i < 16; i++) dv.setUint32(0x5ff4 + 8 + 4 * i, 0x11111111 * (i + 1), true);
    cpu.setCr3(PD);
    cpu.setCr0(cpu.cr0 | CR0_PG);
    cpu.gdtrBase = 0x5ff4;
    const accessed = (page: number) => (dv.getUint32(PT + page * 4, true) & ACCESSED) !== 0;
    return { cpu, accessed };
  }

  it("reads a descriptor within one page with one walk's accessed bit", () => {
    const { cpu, accessed } = gdt(false, true);
    assert.deepEqual(readDescriptor(cpu, 0x10), { lo: 0x33333333, hi: 0x44444444 });
    assert.ok(accessed(6));
  });

  it("walks both pages of a straddling descriptor, even when the first is unmapped", () => {
    const both = gdt(true, true);
    assert.deepEqual(readDescriptor(both.cpu, 0x08), { lo: 0x11111111, hi: 0x22222222 });
    assert.ok(both.accessed(5) && both.accessed(6));
    const second = gdt(false, true);
    assert.equal(readDescriptor(second.cpu, 0x08), null);
    assert.ok(second.accessed(6), "the second word's walk still ran and set its accessed bit");
    const first = gdt(true, false);
    assert.equal(readDescriptor(first.cpu, 0x08), null);
    assert.ok(first.accessed(5));
  });

  it("fails a descriptor on an unmapped page without touching any entry", () => {
    const { cpu, accessed } = gdt(true, false);
    assert.equal(readDescriptor(cpu, 0x10), null);
    assert.ok(!accessed(5) && !accessed(6));
  });
});
