/**
 * loadSegmentCache's shortcut (src/cpu/cpu.ts: a descriptor differing from the loaded one in
 * its selector, DPL or accessed bit only keeps the segment's valid offsets) under attack,
 * beside a hashed victim (guests/hostile/seg_types.c). Hot loops load ES with one LDT
 * descriptor, read through it, load another equal in base and limit, and access through that:
 * read-write then read-only data, readable code or read-only expand-down data (a write
 * #GP(0)), expand-down with B set then clear (an offset past 0xFFFF #GP(0)): warm with the first descriptor twice, then each fault at the
 * first pass, at the access, as interpreted; the allowed orders run to their end. The guest's
 * output, instructions retired and virtual time equal the interpreter's with JS and wasm
 * blocks; the victim's frames hash the same.
 *
 * Ring 3's SS the same way (the CPU's stack segment, switched by a ring change's iret and trap
 * return besides mov): pairs of DPL-3 LDT descriptors, expand-down differing only in B (an
 * offset past 0xFFFF #SS(0) with B clear) and flat with one limit field, G set then clear (the
 * offset past the byte limit #SS(0)). A ring-3 loop loads SS with the first, reads SS:[off],
 * loads the second and reads again (mov); another takes an `into` each pass whose ring-1 hook
 * returns with the second in the frame's SS (trap return), then reads: warm with the first
 * twice, then #SS(0) at the first pass, at the read, entered by iret each run.
 *
 * Mutations (a copy of dist, cpu.js loadSegmentCache): the shortcut also taken on a type
 * change (its mask ~0x61 -> ~0x6f) lets the writes through read-only data and code through
 * (and keeps read-only data's bounds for the read-write one after it); taken on a B change
 * (~0x4061) lets the read past 0xFFFF through. Each fails here (the guest's checks, with the
 * interpreter too: the shortcut is the CPU's, not the blocks'). The mask ~0x4061 lets ring 3's
 * read through SS past 0xFFFF too (mov pair; by trap return the loaded SS is ring 1's, never
 * the pair's other). The G pairs differ in limit, which the shortcut compares: the mask
 * ~0x8061 alone fails nothing; with the limit comparison dropped too, the bytes-limit read goes
 * through in both G pairs (by trap return the shortcut then keeps ring 1's flat SS). No expand-up and expand-down
 * pair: Xen's check_descriptor makes them differ in base or limit.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { attackBeside, type RunKind, sameAsInterpreted } from "./support/attack.js";

/**
 * The guest's CHECK lines: 10 of setup, 6 for each of three pairs with their other order, 5 for
 * the B pair; ring 3's SS: 6 of setup, 5 for each of its two pairs switched by mov, and again
 * switched by trap return.
 */
const CHECKS = 33 + 6 + 4 * 5;

const attack = (kind: RunKind) => attackBeside(kind, "seg_types", CHECKS);

describe("loadSegmentCache's shortcut under attack", () => {
  it("descriptor pairs equal in base and limit, differing in type or B, loaded in turn in hot loops: every access obeys the descriptor loaded, interpreted, JS and wasm; the victim untouched", () => {
    const a = sameAsInterpreted(attack, 50_000);
    assert.equal(a.text.split("\n").filter((l) => l.startsWith("RES ")).length, 8, a.text);
  });
});
