/**
 * Lazy arithmetic flags. An ALU instruction records its operands, result and kind; the six
 * status flags are computed only when something reads them (jcc, setcc, pushf...).
 * Values are kept masked to the operand size (8/16-bit unsigned, 32-bit as int32).
 */

/** All six status flags live in cpu.flags. */
export const L_NONE = 0;
/** res = a + b (also adc with carry-in 0). */
export const L_ADD = 1;
/** res = a + b + 1 (adc with carry-in 1). */
export const L_ADC = 2;
/** res = a - b (also sbb with borrow-in 0, cmp, neg with a = 0). */
export const L_SUB = 3;
/** res = a - b - 1 (sbb with borrow-in 1). */
export const L_SBB = 4;
/** and/or/xor/test: CF = OF = AF = 0. */
export const L_LOGIC = 5;
/** inc: like add with b = 1, but CF is kept in cpu.flags. */
export const L_INC = 6;
/** dec: like sub with b = 1, but CF is kept in cpu.flags. */
export const L_DEC = 7;
/** CF, OF and AF are in cpu.flags; ZF, SF, PF come from the result (shifts, mul...). */
export const L_RES = 8;

/** PF for each low byte of a result: 1 when the byte has an even number of set bits. */
export const PARITY = new Uint8Array(256);
for (let i = 0; i < 256; i++) {
  let n = 0;
  for (let b = i; b !== 0; b >>= 1) n += b & 1;
  PARITY[i] = (n & 1) === 0 ? 1 : 0;
}

/** Mask of an operand of `bits` bits, as the int32 the CPU stores. */
export function sizeMask(bits: number): number {
  return bits === 32 ? -1 : (1 << bits) - 1;
}
