/**
 * console_io (18), semantics.md §9.2. tsxen behaves as a Xen built with verbose=y: every
 * domain may write the console (Mini-OS and our own guests depend on it); input goes to the
 * domain that owns the console.
 */
import { EFAULT, ENOSYS } from "../public/errno.js";
import { CONSOLEIO_WRITE_MAX_MAR, ConsoleIo } from "../public/xen.js";
import type { Vcpu } from "./domain.js";
import type { Hypervisor } from "./hypervisor.js";

export function doConsoleIo(hv: Hypervisor, v: Vcpu, cmd: number, count: number, buf: number): number {
  switch (cmd) {
    case ConsoleIo.write: {
      const w = v.domain.abi.consoleWrite;
      if (w.chunk !== null) return writeInChunks(hv, v, count >>> 0, buf, w.chunk);
      const n = Math.min(count, w.maxBytes ?? CONSOLEIO_WRITE_MAX_MAR);
      const bytes = hv.guest.copyFrom(buf, n);
      if (bytes === null) return -EFAULT;
      // Xen NUL-terminates the copy and prints a C string: an embedded NUL ends the output.
      const nul = bytes.indexOf(0);
      hv.consoleWrite(v.domain, nul < 0 ? bytes : bytes.subarray(0, nul));
      return n;
    }
    case ConsoleIo.read: {
      const data = hv.consoleRead(count);
      if (data.length > 0 && !hv.guest.copyTo(buf, data)) return -EFAULT;
      return data.length;
    }
    default:
      return -ENOSYS;
  }
}

/**
 * JUL console write: any length, copied and printed `chunk` bytes at a time (each piece a
 * C string, so a NUL ends only its own piece); -EFAULT stops at a bad piece (earlier pieces
 * are already out); 0 on success. abi.md §2.13.1
 */
function writeInChunks(hv: Hypervisor, v: Vcpu, count: number, buf: number, chunk: number): number {
  for (let off = 0; off < count; off += chunk) {
    const bytes = hv.guest.copyFrom((buf + off) >>> 0, Math.min(chunk, count - off));
    if (bytes === null) return -EFAULT;
    const nul = bytes.indexOf(0);
    hv.consoleWrite(v.domain, nul < 0 ? bytes : bytes.subarray(0, nul));
  }
  return 0;
}
