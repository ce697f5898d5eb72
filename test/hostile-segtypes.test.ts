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
 * Mutations (a copy of dist, cpu.js loadSegmentCache): the shortcut also taken on a type
 * change (its mask ~0x61 -> ~0x6f) lets the writes through read-only data and code through
 * (and keeps read-only data's bounds for the read-write one after it); taken on a B change
 * (~0x4061) lets the read past 0xFFFF through. Each fails here (the guest's checks, with the
 * interpreter too: the shortcut is the CPU's, not the blocks'). No expand-up and expand-down
 * pair: Xen's check_descriptor makes them differ in base or limit.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { attackBeside, type RunKind, sameAsInterpreted } from "./support/attack.js";

/** The guest's CHECK lines: 10 of setup, 6 for each of three pairs with their other order, 5 for the B pair. */
const CHECKS = 33;

const attack = (kind: RunKind) => attackBeside(kind, "seg_types", CHECKS);

describe("loadSegmentCache's shortcut under attack", () => {
  it("descriptor pairs equal in base and limit, differing in type or B, loaded in turn in hot loops: every access obeys the descriptor loaded, interpreted, JS and wasm; the victim untouched", () => {
    const a = sameAsInterpreted(attack, 50_000);
    assert.equal(a.text.split("\n").filter((l) => l.startsWith("RES ")).length, 4, a.text);
  });
});
