/**
 * The page-type rules of semantics.md §1, exercised directly on the hypervisor's frame table.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { _PAGE_PRESENT, _PAGE_RW } from "../src/public/arch_x86_32.js";
import {
  PGT_count_mask,
  PGT_l1_page_table,
  PGT_l2_page_table,
  PGT_pinned,
  PGT_type_mask,
  PGT_validated,
  PGT_writable_page,
} from "../src/xen/frame_table.js";
import { Hypervisor } from "../src/xen/hypervisor.js";
import { LINEAR_PT_SLOT } from "../src/xen/mm.js";

const P = _PAGE_PRESENT;
const RW = _PAGE_RW;

function setup() {
  const hv = new Hypervisor({ memoryMiB: 16 });
  const d = hv.createDomain("t", 64);
  const pages = [...d.pages];
  for (const f of pages) hv.mem.zeroFrame(f);
  const other = hv.createDomain("other", 8);
  return { hv, d, pages, other: [...other.pages], otherDom: other };
}

const entry = (hv: Hypervisor, table: number, i: number, v: number) =>
  hv.mem.write32(table * 4096 + i * 4, v >>> 0);
const typeOf = (hv: Hypervisor, f: number) => hv.frames.typeInfo[f] & PGT_type_mask;
const typeCount = (hv: Hypervisor, f: number) => hv.frames.typeInfo[f] & PGT_count_mask;

describe("page types (semantics.md §1.3-§1.7)", () => {
  it("pinning an L2 validates it, its L1s and installs Xen's slots", () => {
    const { hv, d, pages } = setup();
    const [l2, l1, data] = pages;
    entry(hv, l1, 0, (data << 12) | P | RW);
    entry(hv, l2, 0, (l1 << 12) | P | RW);
    assert.ok(hv.mm.pin(l2, d.id, PGT_l2_page_table));
    assert.equal(typeOf(hv, l2), PGT_l2_page_table);
    assert.ok(hv.frames.typeInfo[l2] & PGT_pinned);
    assert.equal(typeOf(hv, l1), PGT_l1_page_table);
    assert.ok(hv.frames.typeInfo[l1] & PGT_validated);
    assert.equal(typeOf(hv, data), PGT_writable_page);
    assert.equal(
      hv.mem.read32(l2 * 4096 + LINEAR_PT_SLOT * 4) >>> 12,
      l2,
      "linear page-table slot maps the L2",
    );
  });

  it("a page table can never be mapped writable", () => {
    const { hv, d, pages } = setup();
    const [l2, l1] = pages;
    entry(hv, l1, 0, (l1 << 12) | P | RW); // the L1 maps itself writable
    entry(hv, l2, 0, (l1 << 12) | P | RW);
    assert.equal(hv.mm.pin(l2, d.id, PGT_l2_page_table), false);
    assert.equal(hv.frames.typeInfo[l2], 0, "a failed validation leaves the type none");
    assert.equal(typeCount(hv, l1), 0, "references taken during validation are rolled back");
  });

  it("a PTE for another domain's frame is refused", () => {
    const { hv, d, pages, other } = setup();
    const [l2, l1] = pages;
    entry(hv, l1, 0, (other[0] << 12) | P);
    entry(hv, l2, 0, (l1 << 12) | P | RW);
    assert.equal(hv.mm.pin(l2, d.id, PGT_l2_page_table), false);
  });

  it("forbidden bits: PAT/GLOBAL in an L1 entry, PSE in an L2 entry", () => {
    const { hv, d, pages } = setup();
    const [l2, l1, data] = pages;
    entry(hv, l1, 0, (data << 12) | P | 0x100);
    assert.equal(hv.mm.pin(l1, d.id, PGT_l1_page_table), false);
    entry(hv, l1, 0, 0);
    entry(hv, l2, 0, (l1 << 12) | P | 0x80);
    assert.equal(hv.mm.pin(l2, d.id, PGT_l2_page_table), false);
  });

  it("an L2 may map itself read-only (linear page table) but not writable", () => {
    const { hv, d, pages } = setup();
    const [l2] = pages;
    entry(hv, l2, 5, (l2 << 12) | P);
    assert.ok(hv.mm.pin(l2, d.id, PGT_l2_page_table));
    assert.ok(hv.mm.unpin(l2, d.id));
    entry(hv, l2, 5, (l2 << 12) | P | RW);
    assert.equal(hv.mm.pin(l2, d.id, PGT_l2_page_table), false);
  });

  it("a read-only PDE may map another L2 only once that L2 is validated", () => {
    const { hv, d, pages } = setup();
    const [a, b, l1] = pages;
    entry(hv, b, 0, (l1 << 12) | P | RW);
    assert.ok(hv.mm.pin(b, d.id, PGT_l2_page_table));
    entry(hv, a, 3, (b << 12) | P);
    assert.ok(hv.mm.pin(a, d.id, PGT_l2_page_table), "a validated L2 may be mapped read-only");
    assert.equal(typeCount(hv, b), 2, "the mapping holds a type reference (pin + A's entry)");
    assert.ok(hv.mm.unpin(a, d.id));
    // B as it is in the middle of its own validation (or force-devalidated by domain
    // destruction): typed L2 with references, not validated. Mapping it must be refused, or
    // its unchecked entries would be trusted.
    const saved = hv.frames.typeInfo[b];
    hv.frames.typeInfo[b] = saved & ~PGT_validated;
    assert.equal(hv.mm.pin(a, d.id, PGT_l2_page_table), false);
    hv.frames.typeInfo[b] = saved;
  });

  it("a read-only linear PDE cannot be made writable by an update (XSA-182 fixed)", () => {
    const { hv, d, pages } = setup();
    const [l2] = pages;
    entry(hv, l2, 5, (l2 << 12) | P);
    assert.ok(hv.mm.pin(l2, d.id, PGT_l2_page_table));
    assert.equal(hv.mm.modL2Entry(l2, 5, (l2 << 12) | P | RW, d.id), false);
    assert.equal(hv.mem.read32(l2 * 4096 + 5 * 4), (l2 << 12) | P, "the entry is unchanged");
  });

  it("L2 slots at or above 1008 belong to Xen", () => {
    const { hv, d, pages } = setup();
    const [l2, l1] = pages;
    assert.ok(hv.mm.pin(l2, d.id, PGT_l2_page_table));
    assert.equal(hv.mm.modL2Entry(l2, 1008, (l1 << 12) | P, d.id), false);
  });

  it("pins do not nest, and unpin of an unpinned table fails", () => {
    const { hv, d, pages } = setup();
    const [, l1] = pages;
    assert.ok(hv.mm.pin(l1, d.id, PGT_l1_page_table));
    assert.equal(hv.mm.pin(l1, d.id, PGT_l1_page_table), false);
    assert.equal(typeCount(hv, l1), 1);
    assert.ok(hv.mm.unpin(l1, d.id));
    assert.equal(hv.mm.unpin(l1, d.id), false);
  });

  it("unpinning the last reference devalidates the table and drops its entries' references", () => {
    const { hv, d, pages } = setup();
    const [, l1, data] = pages;
    entry(hv, l1, 3, (data << 12) | P | RW);
    assert.ok(hv.mm.pin(l1, d.id, PGT_l1_page_table));
    assert.equal(typeCount(hv, data), 1);
    const before = hv.frames.count[data];
    assert.ok(hv.mm.unpin(l1, d.id));
    assert.equal(hv.frames.typeInfo[l1] & PGT_validated, 0);
    assert.equal(typeCount(hv, data), 0);
    assert.equal(hv.frames.count[data], before - 1);
  });

  it("a frame in use as a writable page cannot become a page table", () => {
    const { hv, d, pages } = setup();
    const [, l1, data] = pages;
    entry(hv, l1, 0, (data << 12) | P | RW);
    assert.ok(hv.mm.pin(l1, d.id, PGT_l1_page_table));
    assert.equal(hv.mm.pin(data, d.id, PGT_l1_page_table), false);
  });

  it("mod_l1_entry takes the new reference and drops the old one", () => {
    const { hv, d, pages } = setup();
    const [, l1, a, b] = pages;
    assert.ok(hv.mm.pin(l1, d.id, PGT_l1_page_table));
    const ca = hv.frames.count[a];
    const cb = hv.frames.count[b];
    assert.ok(hv.mm.modL1Entry(l1 * 4096, (a << 12) | P, d.id, d.id));
    assert.equal(hv.frames.count[a], ca + 1);
    assert.ok(hv.mm.modL1Entry(l1 * 4096, (b << 12) | P | RW, d.id, d.id));
    assert.equal(hv.frames.count[a], ca);
    assert.equal(hv.frames.count[b], cb + 1);
    assert.equal(typeOf(hv, b), PGT_writable_page);
    assert.equal(
      hv.mm.modL1Entry(l1 * 4096 + 4, (l1 << 12) | P | RW, d.id, d.id),
      false,
      "its own L1 writable",
    );
  });
});
