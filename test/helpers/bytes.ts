/** A 32-bit value as its four little-endian bytes (machine code immediates and displacements). */
export function le32(v: number): number[] {
  return [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff];
}
