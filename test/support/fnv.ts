/** FNV-1a (32-bit) of bytes, as the ctrl_shell guest prints its start_info module's: "0x%08x". */
export function fnv1a(bytes: Uint8Array): string {
  let h = 2166136261;
  for (const b of bytes) h = Math.imul(h ^ b, 16777619) >>> 0;
  return `0x${h.toString(16).padStart(8, "0")}`;
}
