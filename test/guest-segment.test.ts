/**
 * loadGuestSegment (the bounce's CS and SS, the data segments' reload): every field of the
 * descriptor reaches the segment cache as decodeDescriptor decodes it (base bytes 0-3, the
 * limit with and without G, the attributes' flags nibble), and the checks refuse what the
 * hardware would.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Cpu } from "../src/cpu/cpu.js";
import { CS, DS, SS } from "../src/cpu/regs.js";
import { decodeDescriptor, loadGuestSegment } from "../src/xen/descriptors.js";

const PD = 0x1000;
const PT = 0x2000;
const GDT = 0x3000;

function machine(): Cpu {
  const cpu = new Cpu(new Uint8Array(0x10000));
  cpu.resetFlat32();
  const m = new DataView(cpu.mem8.buffer);
  m.setUint32(PD, PT | 7, true);
  for (let p = 0; p < 16; p++) m.setUint32(PT + p * 4, (p << 12) | 7, true);
  cpu.setCr3(PD);
  cpu.setCr0(cpu.cr0 | 0x80010000);
  cpu.gdtrBase = GDT;
  cpu.gdtrLimit = 0xff;
  return cpu;
}

/** A descriptor's two words: base, 20-bit limit, access byte, flags nibble (G D/B L AVL). */
function desc(base: number, limit: number, access: number, flags: number): [number, number] {
  const lo = ((base & 0xffff) << 16) | (limit & 0xffff);
  const hi =
    (base & 0xff000000) | ((flags & 0xf) << 20) | (limit & 0xf0000) | (access << 8) | ((base >>> 16) & 0xff);
  return [lo >>> 0, hi >>> 0];
}

describe("loadGuestSegment", () => {
  it("puts the descriptor's base, limit and attributes in the cache, as decodeDescriptor reads them", () => {
    const cases: { what: string; d: [number, number]; seg: number; sel: number; cs: boolean; ss: boolean }[] =
      [
        {
          what: "ring-1 code, G, base in all four bytes",
          d: desc(0x9a7b5c3d, 0x12345, 0xba, 0xc),
          seg: CS,
          sel: 0x11,
          cs: true,
          ss: false,
        },
        {
          what: "ring-1 stack, byte-granular",
          d: desc(0xc0de0f00, 0x54321, 0xb2, 0x4),
          seg: SS,
          sel: 0x19,
          cs: false,
          ss: true,
        },
        {
          what: "ring-3 data, G, AVL set",
          d: desc(0x7f000001, 0xfffff, 0xf2, 0x9),
          seg: DS,
          sel: 0x23,
          cs: false,
          ss: false,
        },
      ];
    for (const c of cases) {
      const cpu = machine();
      const m = new DataView(cpu.mem8.buffer);
      m.setUint32(GDT + (c.sel & ~7), c.d[0], true);
      m.setUint32(GDT + (c.sel & ~7) + 4, c.d[1], true);
      const ring = c.sel & 3;
      assert.equal(loadGuestSegment(cpu, c.seg, c.sel, ring, c.cs, c.ss), true, c.what);
      const want = decodeDescriptor(c.d[0], c.d[1]);
      assert.deepEqual(
        {
          sel: cpu.segSel[c.seg],
          base: cpu.segBase[c.seg] >>> 0,
          limit: cpu.segLimit[c.seg] >>> 0,
          attr: cpu.segAttr[c.seg],
        },
        { sel: c.sel, base: want.base, limit: want.limit, attr: want.attr },
        c.what,
      );
    }
    // decodeDescriptor itself, on one of them.
    assert.deepEqual(decodeDescriptor(...desc(0x9a7b5c3d, 0x12345, 0xba, 0xc)), {
      base: 0x9a7b5c3d,
      limit: 0x12345fff,
      attr: 0xc0ba,
    });
  });

  it("refuses what the hardware would: not present, wrong type, DPL or RPL, beyond the GDT's limit", () => {
    const bad: { what: string; d: [number, number]; seg: number; sel: number; cs: boolean; ss: boolean }[] = [
      { what: "CS not present", d: desc(0, 0xfffff, 0x3a, 0xc), seg: CS, sel: 0x11, cs: true, ss: false },
      { what: "CS a data segment", d: desc(0, 0xfffff, 0xb2, 0xc), seg: CS, sel: 0x11, cs: true, ss: false },
      { what: "SS read-only", d: desc(0, 0xfffff, 0xb0, 0xc), seg: SS, sel: 0x19, cs: false, ss: true },
      { what: "SS of DPL 3", d: desc(0, 0xfffff, 0xf2, 0xc), seg: SS, sel: 0x19, cs: false, ss: true },
      {
        what: "DS execute-only code",
        d: desc(0, 0xfffff, 0xf8, 0xc),
        seg: DS,
        sel: 0x23,
        cs: false,
        ss: false,
      },
      {
        what: "beyond GDTR's limit",
        d: desc(0, 0xfffff, 0xf2, 0xc),
        seg: DS,
        sel: 0x103,
        cs: false,
        ss: false,
      },
    ];
    for (const c of bad) {
      const cpu = machine();
      const m = new DataView(cpu.mem8.buffer);
      if ((c.sel & ~7) + 8 <= 0x1000) {
        m.setUint32(GDT + (c.sel & ~7), c.d[0], true);
        m.setUint32(GDT + (c.sel & ~7) + 4, c.d[1], true);
      }
      const before = cpu.segBase[c.seg];
      assert.equal(loadGuestSegment(cpu, c.seg, c.sel, 1, c.cs, c.ss), false, c.what);
      assert.equal(cpu.segBase[c.seg], before, `${c.what}: the cache is unchanged`);
    }
  });
});
