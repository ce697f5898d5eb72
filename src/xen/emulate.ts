/**
 * Emulation of privileged instructions on a #GP with error code 0 from the guest
 * (semantics.md §4.8, abi.md §2.2.2): port I/O under the virtual IOPL and the guest's I/O
 * bitmap, cli/sti as no-ops, and from ring 1 only clts, wbinvd, mov to/from CR0/CR2/CR3,
 * rdmsr and wrmsr. The instruction is read through the guest's page tables at its EIP (as
 * Xen's get_user did: the CS base is not added, supervisor rights).
 */
import { CR0_TS, DF, EAX, ECX, EDI, EDX, ESI, PFEC_U, PFEC_W, VM } from "../cpu/regs.js";
import { doFpuTaskswitch } from "./callbacks.js";
import type { Vcpu } from "./domain.js";
import type { Hypervisor } from "./hypervisor.js";
import { reflectTrap } from "./traps.js";

const TRAP_page_fault = 14;
/** Most iterations of a rep ins/outs done per #GP; the rest re-executes (§4.8 point 6). */
const REP_BATCH = 1024;
const MSR_TSC = 0x10;

/** Why the decoder stopped: the instruction was done (or a #PF reflected), or #GP it is. */
const enum Result {
  Done = 0,
  Fail = 1,
}

/** Thrown (this one object) when reading an instruction byte faults. */
const FETCH_FAULT = { fetchFault: true } as const;

/** The decoding state of one emulation: the guest's next instruction byte. */
class Decoder {
  constructor(
    readonly hv: Hypervisor,
    public eip: number,
  ) {}

  /** insn_fetch: one byte at eip; a fault is reflected as #PF (code 4) at that address. */
  byte(): number {
    const guest = this.hv.guest;
    const b = guest.peek8(this.eip);
    if (!guest.ok) throw FETCH_FAULT;
    this.eip = (this.eip + 1) | 0;
    return b;
  }
}

/** propagate_page_fault: #PF to the guest with CR2 = addr, also kept as the virtual CR2. */
function propagatePageFault(hv: Hypervisor, v: Vcpu, addr: number, errorCode: number): void {
  v.guestCr2 = addr >>> 0;
  reflectTrap(hv, v, TRAP_page_fault, errorCode, addr >>> 0);
}

/** KERNEL_MODE: the guest kernel runs in ring 1 (VM86 never is). */
function kernelMode(hv: Hypervisor): boolean {
  return hv.cpu.cpl === 1 && (hv.cpu.getFlags() & VM) === 0;
}

/** The virtual IOPL lets this ring do port I/O and cli/sti: ≥ 1 in ring 1, 3 elsewhere. */
function ioplOkay(hv: Hypervisor, v: Vcpu): boolean {
  return v.iopl >= (kernelMode(hv) ? 1 : 3);
}

/** bits of a port access: ((1 << bytes) - 1) << (port & 7). */
function portBits(port: number, bytes: number): number {
  return ((1 << bytes) - 1) << (port & 7);
}

/**
 * guest_io_okay: the virtual IOPL, else the guest's own bitmap (physdev SET_IOBITMAP), read
 * 16 bits at iobmp + port/8 in guest memory. Xen read it with __get_user, whose fault path
 * yields 0: a bitmap that cannot be read allows the access (the admin check still applies).
 */
function guestIoOkay(hv: Hypervisor, v: Vcpu, port: number, bytes: number): boolean {
  if (ioplOkay(hv, v)) return true;
  if (v.iobmpLimit >>> 0 > port + bytes) {
    const b = hv.guest.copyFrom((v.iobmp + (port >>> 3)) >>> 0, 2);
    const x = b === null ? 0 : b[0] | (b[1] << 8);
    if ((x & portBits(port, bytes)) === 0) return true;
  }
  return false;
}

/** admin_io_okay: the domain's iobmp_mask (granted by dom0) has the port's bits clear. */
function adminIoOkay(v: Vcpu, port: number, bytes: number): boolean {
  const mask = v.domain.iobmpMask;
  if (mask === null) return false;
  const i = port >>> 3;
  const x = (mask[i] ?? 0xff) | ((mask[i + 1] ?? 0xff) << 8);
  return (x & portBits(port, bytes)) === 0;
}

/** in: the real port when the admin allows it, else all ones (the access still "succeeds"). */
function portIn(hv: Hypervisor, v: Vcpu, port: number, bytes: 1 | 2 | 4): number {
  if (!adminIoOkay(v, port, bytes)) return -1;
  return hv.cpu.io.read(port, bytes);
}

/** out: dropped unless the admin allows it. */
function portOut(hv: Hypervisor, v: Vcpu, port: number, bytes: 1 | 2 | 4, value: number): void {
  if (adminIoOkay(v, port, bytes)) hv.cpu.io.write(port, bytes, value);
}

function writeGuest(hv: Hypervisor, va: number, bytes: number, value: number): boolean {
  const b = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) b[i] = (value >>> (8 * i)) & 0xff;
  return hv.guest.copyTo(va >>> 0, b);
}

function readGuest(hv: Hypervisor, va: number, bytes: number): number | null {
  const b = hv.guest.copyFrom(va >>> 0, bytes);
  if (b === null) return null;
  let x = 0;
  for (let i = 0; i < bytes; i++) x |= b[i] << (8 * i);
  return x;
}

/**
 * ins/outs (0x6c-0x6f), with rep. A fault on the data is reflected as #PF at the data address
 * (ESI / EDI), as Xen 3.0 does ([QUIRK] fixed: MAR reported the decode pointer; DEVIATIONS.md).
 * EIP is advanced only when the whole count is done; a long rep leaves it on the instruction.
 */
function stringIo(
  hv: Hypervisor,
  v: Vcpu,
  d: Decoder,
  opcode: number,
  opBytes: number,
  rep: boolean,
): Result {
  const r = hv.cpu.regs;
  if (rep && r[ECX] === 0) {
    hv.cpu.eip = d.eip;
    return Result.Done;
  }
  const bytes = (opcode & 1 ? opBytes : 1) as 1 | 2 | 4;
  const step = hv.cpu.getFlags() & DF ? -bytes : bytes;
  for (let n = 0; ; n++) {
    const port = r[EDX] & 0xffff;
    if (!guestIoOkay(hv, v, port, bytes)) return Result.Fail;
    if (opcode <= 0x6d) {
      const data = portIn(hv, v, port, bytes);
      if (!writeGuest(hv, r[EDI], bytes, data)) {
        propagatePageFault(hv, v, r[EDI], PFEC_U | PFEC_W);
        return Result.Done;
      }
      r[EDI] = (r[EDI] + step) | 0;
    } else {
      const data = readGuest(hv, r[ESI], bytes);
      if (data === null) {
        propagatePageFault(hv, v, r[ESI], PFEC_U);
        return Result.Done;
      }
      portOut(hv, v, port, bytes, data);
      r[ESI] = (r[ESI] + step) | 0;
    }
    if (!rep) break;
    r[ECX] = (r[ECX] - 1) | 0;
    if (r[ECX] === 0) break;
    if (n + 1 >= REP_BATCH) return Result.Done; // preempted: re-execute for the rest
  }
  hv.cpu.eip = d.eip;
  return Result.Done;
}

/** in/out with imm8 or DX; sizes 1 or opBytes. */
function portIo(hv: Hypervisor, v: Vcpu, d: Decoder, opcode: number, opBytes: number): Result {
  const r = hv.cpu.regs;
  const bytes = (opcode & 1 ? opBytes : 1) as 1 | 2 | 4;
  const port = opcode < 0xe8 ? d.byte() : r[EDX] & 0xffff;
  if (!guestIoOkay(hv, v, port, bytes)) return Result.Fail;
  const isIn = (opcode & 2) === 0;
  if (isIn) {
    const data = portIn(hv, v, port, bytes);
    if (bytes === 4) r[EAX] = data;
    else if (bytes === 2) r[EAX] = (r[EAX] & ~0xffff) | (data & 0xffff);
    else r[EAX] = (r[EAX] & ~0xff) | (data & 0xff);
  } else {
    portOut(hv, v, port, bytes, bytes === 4 ? r[EAX] : r[EAX] & (bytes === 2 ? 0xffff : 0xff));
  }
  hv.cpu.eip = d.eip;
  return Result.Done;
}

/** rdmsr_user on the physical CPU: the TSC and the MSRs the machine has; else it faults. */
function readMsr(hv: Hypervisor, index: number): bigint | undefined {
  if (index === MSR_TSC) return hv.cpu.readTsc();
  return hv.cpu.msrs.get(index);
}

/** The ring-1-only two-byte opcodes (semantics.md §4.8 point 4). */
function twoByte(hv: Hypervisor, v: Vcpu, d: Decoder): Result {
  const cpu = hv.cpu;
  const r = cpu.regs;
  const op = d.byte();
  switch (op) {
    case 0x06: // clts
      doFpuTaskswitch(hv, v, 0);
      break;
    case 0x09: // wbinvd: nothing to write back here; a no-op for every domain
      break;
    case 0x20: {
      // mov %crN, reg (register form only)
      const modrm = d.byte();
      if ((modrm & 0xc0) !== 0xc0) return Result.Fail;
      const reg = modrm & 7;
      switch ((modrm >>> 3) & 7) {
        case 0:
          r[reg] = (cpu.cr0 & ~CR0_TS) | (v.guestTs ? CR0_TS : 0);
          break;
        case 2:
          r[reg] = v.guestCr2;
          break;
        case 3:
          r[reg] = v.baseMfn * 4096;
          break;
        default:
          return Result.Fail;
      }
      break;
    }
    case 0x22: {
      // mov reg, %crN
      const modrm = d.byte();
      if ((modrm & 0xc0) !== 0xc0) return Result.Fail;
      const value = r[modrm & 7] >>> 0;
      switch ((modrm >>> 3) & 7) {
        case 0:
          doFpuTaskswitch(hv, v, value & CR0_TS ? 1 : 0);
          break;
        case 2:
          v.guestCr2 = value;
          break;
        case 3:
          // new_guest_cr3 takes a frame number ([QUIRK] fixed: MAR passed the address;
          // DEVIATIONS.md). Its result is ignored, as in Xen.
          hv.newBasePointer(v, value >>> 12);
          break;
        default:
          return Result.Fail;
      }
      break;
    }
    case 0x30: {
      // wrmsr: ignored for unprivileged domains; privileged ones write the machine's MSR.
      if (!v.domain.privileged) break;
      const index = r[ECX] >>> 0;
      if (index === MSR_TSC) break; // the TSC is the hypervisor's clock: not writable
      if (!cpu.msrs.has(index)) return Result.Fail;
      cpu.msrs.set(index, (BigInt(r[EDX] >>> 0) << 32n) | BigInt(r[EAX] >>> 0));
      break;
    }
    case 0x32: {
      // rdmsr: everyone may read the MSR space; an MSR the machine lacks faults.
      const value = readMsr(hv, r[ECX] >>> 0);
      if (value === undefined) return Result.Fail;
      r[EAX] = Number(value & 0xffffffffn) | 0;
      r[EDX] = Number((value >> 32n) & 0xffffffffn) | 0;
      break;
    }
    default:
      return Result.Fail;
  }
  cpu.eip = d.eip;
  return Result.Done;
}

function decode(hv: Hypervisor, v: Vcpu, d: Decoder): Result {
  let opBytes = 4;
  let rep = false;
  let opcode = 0;
  // Up to 8 legacy prefixes; 0x66 toggles the operand size, F3 is rep, the rest are ignored.
  prefixes: for (let i = 0; i < 8; i++) {
    opcode = d.byte();
    switch (opcode) {
      case 0x66:
        opBytes ^= 6;
        break;
      case 0x67:
      case 0x2e:
      case 0x3e:
      case 0x26:
      case 0x64:
      case 0x65:
      case 0x36:
      case 0xf0:
      case 0xf2:
        break;
      case 0xf3:
        rep = true;
        break;
      default:
        break prefixes;
    }
  }
  if (opcode >= 0x6c && opcode <= 0x6f) return stringIo(hv, v, d, opcode, opBytes, rep);
  switch (opcode) {
    case 0xe4:
    case 0xe5:
    case 0xe6:
    case 0xe7:
    case 0xec:
    case 0xed:
    case 0xee:
    case 0xef:
      return portIo(hv, v, d, opcode, opBytes);
    case 0xfa: // cli
    case 0xfb: // sti
      // No-ops when the IOPL allows them: the real IF and the upcall mask stay as they are.
      if (!ioplOkay(hv, v)) return Result.Fail;
      hv.cpu.eip = d.eip;
      return Result.Done;
    case 0x0f:
      if (!kernelMode(hv)) return Result.Fail;
      return twoByte(hv, v, d);
    default:
      return Result.Fail;
  }
}

/**
 * emulate_privileged_op: true when the #GP(0) was dealt with (the instruction emulated and
 * EIP advanced, or a #PF reflected for a fault on its bytes or data); false to reflect #GP.
 */
export function emulatePrivilegedOp(hv: Hypervisor, v: Vcpu): boolean {
  const d = new Decoder(hv, hv.cpu.eip);
  try {
    return decode(hv, v, d) === Result.Done;
  } catch (e) {
    if (e !== FETCH_FAULT) throw e;
    propagatePageFault(hv, v, d.eip, PFEC_U);
    return true;
  }
}
