/**
 * A small PCI bus (PCI Local Bus Specification 2.3, type-0 headers): functions with real
 * 256-byte configuration spaces whose registers have per-bit write rules (read-only, read/write,
 * write-one-to-clear), base address registers that answer the size probe (write all ones, read
 * back the size mask), and INTx pins wired to lines of an IrqController. Configuration space is
 * reached by (bus, dev, fn, reg, len) or through configuration mechanism #1 (ports 0xCF8/0xCFC).
 * Absent functions read as all ones and ignore writes. It knows nothing of Xen.
 */
import type { IrqController, IrqDevice } from "./irq.js";

// ------------------------------------------------------------------ configuration header offsets

export const PCI_VENDOR_ID = 0x00;
export const PCI_DEVICE_ID = 0x02;
export const PCI_COMMAND = 0x04;
export const PCI_STATUS = 0x06;
export const PCI_REVISION_ID = 0x08;
export const PCI_CLASS_PROG = 0x09;
export const PCI_CLASS_DEVICE = 0x0a;
export const PCI_CACHE_LINE_SIZE = 0x0c;
export const PCI_LATENCY_TIMER = 0x0d;
export const PCI_HEADER_TYPE = 0x0e;
export const PCI_BASE_ADDRESS_0 = 0x10;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
export const PCI_SUBSYSTEM_ID = 0x2e;
export const PCI_ROM_ADDRESS = 0x30;
export const PCI_INTERRUPT_LINE = 0x3c;
export const PCI_INTERRUPT_PIN = 0x3d;

export const PCI_COMMAND_IO = 0x1;
export const PCI_COMMAND_MEMORY = 0x2;
export const PCI_COMMAND_MASTER = 0x4;
export const PCI_COMMAND_PARITY = 0x40;
export const PCI_COMMAND_SERR = 0x100;
export const PCI_COMMAND_INTX_DISABLE = 0x400;

/** Read-only: the function's INTx is asserted (PCI 2.3). */
export const PCI_STATUS_INTERRUPT = 0x8;
export const PCI_STATUS_DEVSEL_MEDIUM = 0x200;
/** The error bits of the status register, each cleared by writing a one to it. */
export const PCI_STATUS_ERRORS = 0xf900;

export const PCI_HEADER_TYPE_MULTI_FUNCTION = 0x80;
export const PCI_BASE_ADDRESS_SPACE_IO = 0x1;
export const PCI_BASE_ADDRESS_MEM_PREFETCH = 0x8;
export const PCI_ROM_ADDRESS_ENABLE = 0x1;

/** Configuration mechanism #1: the address register's enable bit (port 0xCF8, bit 31). */
export const PCI_CONF1_ENABLE = 0x80000000;

/** One base address register: a memory or I/O window of a power-of-two size. */
export interface PciBar {
  readonly kind: "mem" | "io";
  /** Bytes decoded: a power of two, at least 16 for memory and 4 for I/O. */
  readonly size: number;
  /** Address the firmware assigned (aligned to size). */
  readonly base: number;
  readonly prefetchable?: boolean;
}

/** What a function looks like when it is built. */
export interface PciFunctionSpec {
  readonly vendor: number;
  readonly device: number;
  /** 24-bit class code: base class, sub-class, programming interface. */
  readonly classCode: number;
  readonly revision?: number;
  readonly subsystemVendor?: number;
  readonly subsystem?: number;
  /** Up to six BARs, in order from BAR0; null leaves a BAR unimplemented (reads 0). */
  readonly bars?: readonly (PciBar | null)[];
  /** Expansion ROM window (disabled at reset). */
  readonly rom?: { readonly size: number; readonly base: number };
  /** INTx pin: 0 none, 1..4 for INTA#..INTD#. */
  readonly pin?: number;
  /** Value firmware left in the interrupt line register (a scratch byte for the OS). */
  readonly firmwareLine?: number;
  /** Writable bits of the command register. */
  readonly commandMask?: number;
  /** Command register at reset (firmware enabled decoding). */
  readonly command?: number;
  /** Read-only status bits (DEVSEL timing, 66 MHz, fast back-to-back...). */
  readonly status?: number;
}

/** One function of a device: its configuration space and the write rules of every bit. */
export class PciFunction {
  readonly config = new Uint8Array(256);
  /** Bits software may change. */
  private readonly writable = new Uint8Array(256);
  /** Bits cleared by writing one (status error bits). */
  private readonly writeOneToClear = new Uint8Array(256);
  readonly bars: readonly (PciBar | null)[];
  readonly rom: { readonly size: number; readonly base: number } | null;
  private intx: IrqDevice | null = null;
  private intxAsserted = false;

  constructor(readonly spec: PciFunctionSpec) {
    const c = this.config;
    this.put(PCI_VENDOR_ID, 2, spec.vendor);
    this.put(PCI_DEVICE_ID, 2, spec.device);
    this.put(PCI_REVISION_ID, 1, spec.revision ?? 0);
    this.put(PCI_CLASS_PROG, 1, spec.classCode & 0xff);
    this.put(PCI_CLASS_DEVICE, 2, spec.classCode >>> 8);
    this.put(PCI_SUBSYSTEM_VENDOR_ID, 2, spec.subsystemVendor ?? 0);
    this.put(PCI_SUBSYSTEM_ID, 2, spec.subsystem ?? 0);
    const commandMask =
      spec.commandMask ??
      PCI_COMMAND_IO |
        PCI_COMMAND_MEMORY |
        PCI_COMMAND_MASTER |
        PCI_COMMAND_PARITY |
        PCI_COMMAND_SERR |
        PCI_COMMAND_INTX_DISABLE;
    this.put(PCI_COMMAND, 2, (spec.command ?? 0) & commandMask);
    this.mask(PCI_COMMAND, 2, commandMask);
    this.put(
      PCI_STATUS,
      2,
      (spec.status ?? PCI_STATUS_DEVSEL_MEDIUM) & ~PCI_STATUS_ERRORS & ~PCI_STATUS_INTERRUPT,
    );
    for (let i = 0; i < 2; i++) this.writeOneToClear[PCI_STATUS + i] = (PCI_STATUS_ERRORS >>> (8 * i)) & 0xff;
    this.mask(PCI_CACHE_LINE_SIZE, 1, 0xff);
    this.mask(PCI_LATENCY_TIMER, 1, 0xf8);
    this.bars = spec.bars ?? [];
    if (this.bars.length > 6) throw new RangeError("a type-0 header has six BARs");
    this.bars.forEach((bar, i) => {
      if (bar === null) return;
      const min = bar.kind === "mem" ? 16 : 4;
      if (bar.size < min || (bar.size & (bar.size - 1)) !== 0 || bar.base % bar.size !== 0) {
        throw new RangeError(
          `BAR${i}: size ${bar.size} must be a power of two >= ${min} and base aligned to it`,
        );
      }
      const reg = PCI_BASE_ADDRESS_0 + 4 * i;
      // I/O windows decode 16 address bits (a PC's port space): the upper half is hardwired 0.
      const addrMask = bar.kind === "mem" ? ~(bar.size - 1) & 0xfffffff0 : ~(bar.size - 1) & 0xfffc;
      const flags =
        bar.kind === "io" ? PCI_BASE_ADDRESS_SPACE_IO : bar.prefetchable ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0;
      this.put(reg, 4, (bar.base & addrMask) | flags);
      this.mask(reg, 4, addrMask);
    });
    this.rom = spec.rom ?? null;
    if (this.rom) {
      const { size, base } = this.rom;
      if (size < 2048 || (size & (size - 1)) !== 0 || base % size !== 0)
        throw new RangeError(`bad ROM window ${size}@${base}`);
      this.put(PCI_ROM_ADDRESS, 4, base);
      this.mask(PCI_ROM_ADDRESS, 4, (~(size - 1) & 0xfffff800) | PCI_ROM_ADDRESS_ENABLE);
    }
    const pin = spec.pin ?? 0;
    if (!Number.isInteger(pin) || pin < 0 || pin > 4) throw new RangeError(`INTx pin ${pin}`);
    c[PCI_INTERRUPT_PIN] = pin;
    c[PCI_INTERRUPT_LINE] = spec.firmwareLine ?? (pin ? 0 : 0xff);
    this.mask(PCI_INTERRUPT_LINE, 1, 0xff);
  }

  private put(reg: number, len: number, value: number): void {
    for (let i = 0; i < len; i++) this.config[reg + i] = (value >>> (8 * i)) & 0xff;
  }

  private mask(reg: number, len: number, bits: number): void {
    for (let i = 0; i < len; i++) this.writable[reg + i] = (bits >>> (8 * i)) & 0xff;
  }

  get vendor(): number {
    return this.readByte(PCI_VENDOR_ID) | (this.readByte(PCI_VENDOR_ID + 1) << 8);
  }

  get multiFunction(): boolean {
    return (this.config[PCI_HEADER_TYPE] & PCI_HEADER_TYPE_MULTI_FUNCTION) !== 0;
  }

  /** Set by the bus when function 0 of a multi-function device is placed. */
  markMultiFunction(): void {
    this.config[PCI_HEADER_TYPE] |= PCI_HEADER_TYPE_MULTI_FUNCTION;
  }

  get command(): number {
    return this.config[PCI_COMMAND] | (this.config[PCI_COMMAND + 1] << 8);
  }

  get status(): number {
    return this.config[PCI_STATUS] | (this.config[PCI_STATUS + 1] << 8);
  }

  /** The address BAR i decodes now (its register with the flag bits removed), or null. */
  barAddress(i: number): number | null {
    const bar = this.bars[i];
    if (!bar) return null;
    const v = this.readRaw(PCI_BASE_ADDRESS_0 + 4 * i, 4);
    return bar.kind === "mem" ? (v & 0xfffffff0) >>> 0 : v & 0xfffc;
  }

  readByte(reg: number): number {
    return this.config[reg];
  }

  private readRaw(reg: number, len: number): number {
    let v = 0;
    for (let i = len - 1; i >= 0; i--) v = (v << 8) | this.config[reg + i];
    return v >>> 0;
  }

  /** A naturally aligned read of len (1, 2, 4) bytes at reg. */
  read(reg: number, len: number): number {
    return this.readRaw(reg, len);
  }

  /** A naturally aligned write: each bit obeys its rule (read-only, read/write, write-one-to-clear). */
  write(reg: number, len: number, value: number): void {
    for (let i = 0; i < len; i++) {
      const r = reg + i;
      const b = (value >>> (8 * i)) & 0xff;
      const w = this.writable[r];
      const w1c = this.writeOneToClear[r];
      this.config[r] = ((this.config[r] & ~w) | (b & w)) & ~(b & w1c);
    }
    if (reg <= PCI_COMMAND + 1 && reg + len > PCI_COMMAND + 1) this.updateIntx();
  }

  // ------------------------------------------------------------------ device side

  /** Connects the function's INTx pin to an interrupt line (level-triggered, as PCI INTx is). */
  connect(irq: IrqController, line: number): void {
    this.intx = irq.attachDevice(line, "level");
  }

  /** The line INTx is wired to, or -1. */
  get intxLine(): number {
    return this.intx ? this.intx.line : -1;
  }

  /** The device wants service: asserts INTx (unless disabled in the command register). */
  assertIntx(): void {
    this.intxAsserted = true;
    this.config[PCI_STATUS] |= PCI_STATUS_INTERRUPT;
    this.updateIntx();
  }

  /** The driver serviced the device. */
  deassertIntx(): void {
    this.intxAsserted = false;
    this.config[PCI_STATUS] &= ~PCI_STATUS_INTERRUPT;
    this.updateIntx();
  }

  private updateIntx(): void {
    if (!this.intx) return;
    if (this.intxAsserted && !(this.command & PCI_COMMAND_INTX_DISABLE)) this.intx.raise();
    else this.intx.lower();
  }

  /** The device records an error condition in its status register (e.g. a master abort). */
  signalStatus(bits: number): void {
    const b = bits & PCI_STATUS_ERRORS;
    this.config[PCI_STATUS] |= b & 0xff;
    this.config[PCI_STATUS + 1] |= b >>> 8;
  }
}

/** bus:dev.fn packed as Linux does (bus << 8 | devfn). */
export function bdf(bus: number, dev: number, fn: number): number {
  return (bus << 8) | (dev << 3) | fn;
}

export interface PciSlot {
  readonly bus: number;
  readonly dev: number;
  readonly fn: number;
  readonly func: PciFunction;
}

export class PciBus {
  private readonly functions = new Map<number, PciFunction>();
  /** Configuration mechanism #1 address register (port 0xCF8). */
  private conf1Address = 0;

  constructor(private readonly irq: IrqController | null = null) {}

  /**
   * Places a function at bus:dev.fn. A function other than 0 makes its device multi-function
   * (header type bit 7 of function 0, which must exist first, as software probes only fn 0).
   * intxLine: the interrupt-controller line the INTx pin is routed to.
   */
  add(bus: number, dev: number, fn: number, f: PciFunction, intxLine?: number): PciFunction {
    this.checkAddress(bus, dev, fn);
    const key = bdf(bus, dev, fn);
    if (this.functions.has(key)) throw new Error(`${slotName(bus, dev, fn)} is already occupied`);
    if (fn !== 0) {
      const f0 = this.functions.get(bdf(bus, dev, 0));
      if (!f0) throw new Error(`${slotName(bus, dev, fn)}: function 0 of the device must exist first`);
      f0.markMultiFunction();
      f.markMultiFunction();
    }
    if (intxLine !== undefined) {
      if (!this.irq) throw new Error("the bus has no interrupt controller");
      if (!f.spec.pin) throw new Error(`${slotName(bus, dev, fn)} has no interrupt pin to wire`);
      f.connect(this.irq, intxLine);
    }
    this.functions.set(key, f);
    return f;
  }

  private checkAddress(bus: number, dev: number, fn: number): void {
    const ok = (v: number, max: number) => Number.isInteger(v) && v >= 0 && v <= max;
    if (!ok(bus, 255) || !ok(dev, 31) || !ok(fn, 7))
      throw new RangeError(`no PCI address ${bus}:${dev}.${fn}`);
  }

  /** The function at bus:dev.fn, or null. */
  find(bus: number, dev: number, fn: number): PciFunction | null {
    return this.functions.get(bdf(bus, dev, fn)) ?? null;
  }

  /** Every function, in bus/dev/fn order (the order a bus scan finds them). */
  list(): PciSlot[] {
    return [...this.functions.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([k, func]) => ({ bus: k >>> 8, dev: (k >>> 3) & 31, fn: k & 7, func }));
  }

  /**
   * A configuration read of len bytes (1, 2 or 4) at reg (0..255, naturally aligned: an access
   * may not cross its dword). An absent function answers all ones (a master abort).
   */
  configRead(bus: number, dev: number, fn: number, reg: number, len: number): number {
    this.checkAddress(bus, dev, fn);
    checkAccess(reg, len);
    const f = this.find(bus, dev, fn);
    if (!f) return len === 4 ? 0xffffffff : (1 << (8 * len)) - 1;
    return f.read(reg, len);
  }

  /** A configuration write (same alignment rules); writes to an absent function vanish. */
  configWrite(bus: number, dev: number, fn: number, reg: number, len: number, value: number): void {
    this.checkAddress(bus, dev, fn);
    checkAccess(reg, len);
    this.find(bus, dev, fn)?.write(reg, len, value >>> 0);
  }

  // ------------------------------------------------------------------ mechanism #1 (0xCF8 / 0xCFC)

  /** outl to 0xCF8: enable bit 31, bus 23:16, device 15:11, function 10:8, register 7:2. */
  writeConf1Address(value: number): void {
    this.conf1Address = (value & 0x80fffffc) >>> 0;
  }

  readConf1Address(): number {
    return this.conf1Address;
  }

  /**
   * in{b,w,l} from 0xCFC + offset (offset + len <= 4). With the enable bit clear no
   * configuration cycle runs and the port floats: all ones.
   */
  readConf1Data(offset: number, len: number): number {
    checkAccess(offset, len);
    const a = this.conf1Address;
    const ones = len === 4 ? 0xffffffff : (1 << (8 * len)) - 1;
    if (!(a & PCI_CONF1_ENABLE)) return ones;
    return this.configRead((a >>> 16) & 0xff, (a >>> 11) & 31, (a >>> 8) & 7, (a & 0xfc) + offset, len);
  }

  /** out{b,w,l} to 0xCFC + offset. Ignored while the enable bit is clear. */
  writeConf1Data(offset: number, len: number, value: number): void {
    checkAccess(offset, len);
    const a = this.conf1Address;
    if (!(a & PCI_CONF1_ENABLE)) return;
    this.configWrite((a >>> 16) & 0xff, (a >>> 11) & 31, (a >>> 8) & 7, (a & 0xfc) + offset, len, value);
  }
}

function checkAccess(reg: number, len: number): void {
  if (len !== 1 && len !== 2 && len !== 4) throw new RangeError(`configuration access of ${len} bytes`);
  if (!Number.isInteger(reg) || reg < 0 || reg > 255 || reg % len !== 0) {
    throw new RangeError(`configuration register ${reg} is not a naturally aligned ${len}-byte register`);
  }
}

export function slotName(bus: number, dev: number, fn: number): string {
  const h = (v: number, n: number) => v.toString(16).padStart(n, "0");
  return `${h(bus, 2)}:${h(dev, 2)}.${fn}`;
}

/** Sizes BAR i by the standard probe: save, write all ones, read the mask back, restore. */
export function probeBarSize(bus: PciBus, b: number, d: number, f: number, i: number): number {
  const reg = PCI_BASE_ADDRESS_0 + 4 * i;
  const saved = bus.configRead(b, d, f, reg, 4);
  bus.configWrite(b, d, f, reg, 4, 0xffffffff);
  const mask = bus.configRead(b, d, f, reg, 4);
  bus.configWrite(b, d, f, reg, 4, saved);
  if (mask === 0 || mask === 0xffffffff) return 0;
  const addr = mask & PCI_BASE_ADDRESS_SPACE_IO ? mask & 0xfffc : mask & 0xfffffff0;
  return addr === 0 ? 0 : (addr & -addr) >>> 0;
}

/**
 * The machine's PCI bus, as firmware left it: a host bridge at 00:00.0, a PIIX3-style ISA bridge
 * with its IDE function at 00:01.0/00:01.1, a network controller at 00:03.0 and a SCSI storage
 * controller at 00:04.0. INTx pins are swizzled onto IO-APIC lines 16..19 (line 16 +
 * (dev + pin - 1) mod 4); firmware wrote the 8259 routing into the interrupt line registers.
 */
export function standardPciBus(irq: IrqController): PciBus {
  const bus = new PciBus(irq);
  const swizzle = (dev: number, pin: number) => 16 + ((dev + pin - 1) % 4);
  bus.add(
    0,
    0,
    0,
    new PciFunction({
      vendor: 0x8086,
      device: 0x1237,
      classCode: 0x060000,
      revision: 0x02,
      commandMask: PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER,
      command: PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER,
    }),
  );
  bus.add(
    0,
    1,
    0,
    new PciFunction({
      vendor: 0x8086,
      device: 0x7000,
      classCode: 0x060100,
      commandMask: PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER,
      command: PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER,
    }),
  );
  // Legacy-mode IDE: no INTx pin (ISA IRQs 14/15); BAR4 is the bus-master DMA window.
  bus.add(
    0,
    1,
    1,
    new PciFunction({
      vendor: 0x8086,
      device: 0x7010,
      classCode: 0x010180,
      bars: [null, null, null, null, { kind: "io", size: 16, base: 0xc040 }],
      command: PCI_COMMAND_IO | PCI_COMMAND_MASTER,
    }),
  );
  bus.add(
    0,
    3,
    0,
    new PciFunction({
      vendor: 0x8086,
      device: 0x100e,
      classCode: 0x020000,
      revision: 0x03,
      subsystemVendor: 0x8086,
      subsystem: 0x001e,
      bars: [
        { kind: "mem", size: 0x20000, base: 0xfebc0000 },
        { kind: "io", size: 64, base: 0xc000 },
      ],
      rom: { size: 0x20000, base: 0xfeb80000 },
      pin: 1,
      firmwareLine: 11,
      command: PCI_COMMAND_IO | PCI_COMMAND_MEMORY,
    }),
    swizzle(3, 1),
  );
  bus.add(
    0,
    4,
    0,
    new PciFunction({
      vendor: 0x1000,
      device: 0x0012,
      classCode: 0x010000,
      bars: [
        { kind: "io", size: 256, base: 0xc100 },
        { kind: "mem", size: 0x400, base: 0xfebe0000 },
        { kind: "mem", size: 0x2000, base: 0xfebe2000 },
      ],
      pin: 1,
      firmwareLine: 10,
      command: PCI_COMMAND_IO | PCI_COMMAND_MEMORY,
    }),
    swizzle(4, 1),
  );
  return bus;
}
