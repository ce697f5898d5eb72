/**
 * fsqrt's 80-bit square root (fpu.ts sqrtX80) against its definition, checked with BigInt:
 * the result is the representable neighbour the rounding control picks around the exact root,
 * the precision flag is set exactly when the root is inexact, and perfect squares are exact.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { FSW_PE, RES, roundFlags, sqrtX80, X_OK, X80 } from "../src/cpu/fpu.js";

const BIAS = 16383;
const TWO63 = 1n << 63n;

/** A positive finite x80 value as mantissa * 2^exp (mantissa < 2^64, exp unbounded). */
interface Val {
  m: bigint;
  e: number;
}

function valOf(se: number, hi: number, lo: number): Val {
  const m = (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
  // Denormals (biased exponent 0) have the exponent of biased 1.
  return { m, e: Math.max(se & 0x7fff, 1) - BIAS - 63 };
}

/** Compares a^2 with b (a, b positive). */
function cmpSquare(a: Val, b: Val): number {
  const ea = 2 * a.e;
  const k = Math.min(ea, b.e);
  const l = a.m * a.m * (1n << BigInt(ea - k));
  const r = b.m * (1n << BigInt(b.e - k));
  return l < r ? -1 : l > r ? 1 : 0;
}

/** The next representable value below a normal r (one ulp, or half of one at 2^63). */
function below(r: Val): Val {
  return r.m === TWO63 ? { m: 2n * r.m - 1n, e: r.e - 1 } : { m: r.m - 1n, e: r.e };
}

function above(r: Val): Val {
  return { m: r.m + 1n, e: r.e };
}

/** Midpoint of two neighbours p < q as a value with one more bit. */
function mid(p: Val, q: Val): Val {
  const e = Math.min(p.e, q.e) - 1;
  return { m: ((p.m << BigInt(p.e - e)) + (q.m << BigInt(q.e - e))) >> 1n, e };
}

function check(se: number, hi: number, lo: number, rc: number): void {
  const x = new X80();
  x.se = se;
  x.hi = hi;
  x.lo = lo;
  assert.equal(sqrtX80(x, rc), X_OK);
  const r = valOf(RES.se, RES.hi, RES.lo);
  const v = valOf(se, hi, lo);
  const what = `sqrt(${se.toString(16)}:${hi.toString(16)}:${lo.toString(16)}) rc ${rc} = ${RES.se.toString(16)}:${RES.hi.toString(16)}:${RES.lo.toString(16)}`;
  assert.ok(RES.hi >>> 31 === 1, `${what}: the root is normal`);
  const exact = cmpSquare(r, v) === 0;
  assert.equal((roundFlags & FSW_PE) !== 0, !exact, `${what}: PE iff inexact`);
  if (exact) return;
  const lo2 = below(r);
  const hi2 = above(r);
  if (rc === 0) {
    // Nearest: x lies between the squares of the half-way points (ties are even roots).
    assert.ok(cmpSquare(mid(lo2, r), v) <= 0 && cmpSquare(mid(r, hi2), v) >= 0, `${what}: nearest`);
  } else if (rc === 2) {
    // Up: the smallest value whose square is at least x.
    assert.ok(cmpSquare(r, v) > 0 && cmpSquare(lo2, v) < 0, `${what}: up`);
  } else {
    // Down and toward zero (the root is positive): the largest value whose square is below x.
    assert.ok(cmpSquare(r, v) < 0 && cmpSquare(hi2, v) > 0, `${what}: down`);
  }
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
}

test("fsqrt rounds the exact root as the rounding control says, with PE iff inexact", () => {
  const next = rng(0x5eed1);
  for (let i = 0; i < 3000; i++) {
    // Normal operands over the whole exponent range (even and odd exponents), and denormals.
    const se = i % 10 === 0 ? 0 : 1 + (next() % 0x7ffe);
    const hi = i % 10 === 0 ? next() >>> 1 || 1 : (next() | 0x80000000) >>> 0;
    check(se, hi, next(), i & 3);
  }
});

test("fsqrt of perfect squares is exact", () => {
  const next = rng(7);
  for (let i = 0; i < 500; i++) {
    // m = q^2 with q < 2^32: the mantissa normalised (shifted left), the exponent matching.
    const q = BigInt((next() | 1) >>> 0);
    let m = q * q;
    let shift = 0;
    while (m < TWO63) {
      m <<= 1n;
      shift++;
    }
    // value = q^2 = m * 2^-shift; an even exponent keeps the root representable exactly.
    const e = -shift;
    const se = BIAS + 63 + e;
    if ((shift & 1) !== 0) continue;
    const x = new X80();
    x.se = se;
    x.hi = Number(m >> 32n);
    x.lo = Number(m & 0xffffffffn);
    assert.equal(sqrtX80(x, i & 3), X_OK);
    assert.equal(roundFlags & FSW_PE, 0, `sqrt(${q}^2) exact`);
    assert.equal(cmpSquare(valOf(RES.se, RES.hi, RES.lo), valOf(se, x.hi, x.lo)), 0);
  }
});
