/**
 * The #PF's error code and CR2 under an attacker beside a hashed victim
 * (guests/hostile/pf_codes.c). The page walk computes the fault's W and U bits at the fault
 * only (cpu.ts translate, 6677e06); Xen passes the hardware's code to the guest unchanged. The
 * attacker reads, writes and fetches from ring 1 and ring 3, 60 times a case so the code runs
 * compiled, through PTEs and PDEs not present, read-only and supervisor-only, and across page
 * ends into them: every fault's code (P, W, U; no reserved bit) and CR2 must be Xen's, every
 * allowed access go through, a faulting crossing write leave no half; the same with the
 * interpreter, JS and wasm blocks.
 *
 * Mutations of the compiled walk (dist copy) each fail it: the W bit dropped at the fault (16
 * write cases), the U bit dropped (18 ring-3 cases), P set for a PDE not present (4), the PDE's
 * RW and US bits left out of the permission (6: ring 3 writes through a supervisor PDE).
 */
import { describe, it } from "node:test";
import { attackBeside, type RunKind, sameAsInterpreted } from "./support/attack.js";

/** The guest's CHECK lines: 4 of setup, 37 cases, 3 after. */
const CHECKS = 44;

const attack = (kind: RunKind) => attackBeside(kind, "pf_codes", CHECKS, 2000);

describe("the #PF's error code and CR2 under attack", () => {
  it("ring 1 and ring 3 reads, writes and fetches through refused PTEs and PDEs, across page ends too: Xen's code and CR2 every time, interpreted, JS and wasm; the victim untouched", () => {
    sameAsInterpreted(attack, 10_000);
  });
});
