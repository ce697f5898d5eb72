/**
 * Machine memory: one ArrayBuffer of 4 KiB frames, and the heap allocator that hands frames
 * to the hypervisor. Knows nothing of Xen: ownership and types are the hypervisor's business.
 */
import { allocRam } from "./ram.js";

export const FRAME_SIZE = 4096;
export const FRAME_SHIFT = 12;
export const FRAMES_PER_MIB = 2 ** 20 / FRAME_SIZE;
/**
 * The most machine memory modelled: a non-PAE x86-32 machine addresses 4 GiB; it stops a MiB
 * short so its size in bytes is a 32-bit number (no RAM is lost: the top 32 MiB are the device
 * window). Addresses above 2 GiB set bit 31, so code that makes one with bit operations (an
 * int32) indexes memory with >>> (see Cpu).
 */
export const MAX_MACHINE_MIB = 4095;
/**
 * The first frame of the PC's device window below 4 GiB (0xfe000000: PCI BARs, IO APIC,
 * local APIC, BIOS): frames from here up are never RAM, however large the machine.
 */
export const DEVICE_WINDOW_FRAME = 0xfe000;

/** A number of frames in MiB for messages: whole when exact, else down to a tenth. */
export function framesInMiB(frames: number): string {
  const tenths = Math.floor((Math.max(0, frames) * 10) / FRAMES_PER_MIB);
  return tenths % 10 === 0 ? String(tenths / 10) : (tenths / 10).toFixed(1);
}

/**
 * A --machine-memory option (MiB) checked against the model's range and the host's memory
 * (hostMiB, passed in: this layer also runs in a browser); throws an Error saying which bound.
 */
export function machineMemoryOption(text: string, hostMiB: number, min = 4): number {
  if (!/^\d+$/.test(text.trim()))
    throw new Error(`--machine-memory must be a whole number of MiB, not "${text}"`);
  const n = Number(text);
  if (n < min) throw new Error(`--machine-memory ${n}: the machine needs at least ${min} MiB`);
  if (n > MAX_MACHINE_MIB)
    throw new Error(
      `--machine-memory ${n}: at most ${MAX_MACHINE_MIB} MiB (a 32-bit machine without PAE addresses 4 GiB)`,
    );
  // The host backs a frame when it is first written, but the guests may write every one.
  if (n > hostMiB)
    throw new Error(
      `--machine-memory ${n}: this host has ${hostMiB} MiB of memory (tsxen takes it as the guests first write each frame)`,
    );
  return n;
}

/** isFree: a free frame, and one freed to be zeroed before it is handed out again. */
const FREE = 1;
const FREE_SCRUB = 2;

export class MachineMemory {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  private readonly words: Int32Array;
  /** Frames the machine's address space covers (its size in MiB × 256). */
  readonly nrFrames: number;
  /** Frames below this are RAM (all but those in the device window, DEVICE_WINDOW_FRAME). */
  readonly ramEnd: number;
  /** Free frames, allocated from the lowest number up so runs are deterministic. */
  private readonly free: Int32Array;
  private freeCount = 0;
  private readonly isFree: Uint8Array;

  /** reservedFrames: frames below this are never handed out (firmware/I/O, as on a PC). */
  constructor(mebibytes: number, reservedFrames = 0) {
    if (!Number.isInteger(mebibytes) || mebibytes < 4 || mebibytes > MAX_MACHINE_MIB) {
      throw new RangeError(
        `machine memory must be a whole number of MiB in 4..${MAX_MACHINE_MIB}, not ${mebibytes}`,
      );
    }
    this.nrFrames = mebibytes * FRAMES_PER_MIB;
    try {
      // Zero-filled and untouched: the host commits a frame's memory when it is first written.
      // On a WebAssembly.Memory (with the CPU's state area) when it fits: wasm blocks.
      this.bytes = allocRam(this.nrFrames * FRAME_SIZE);
    } catch {
      throw new RangeError(`machine memory of ${mebibytes} MiB: the host would not reserve that much`);
    }
    this.view = new DataView(this.bytes.buffer, 0, this.bytes.byteLength);
    this.words = new Int32Array(this.bytes.buffer, 0, this.bytes.byteLength >>> 2);
    this.free = new Int32Array(this.nrFrames);
    this.isFree = new Uint8Array(this.nrFrames);
    this.ramEnd = Math.min(this.nrFrames, DEVICE_WINDOW_FRAME);
    for (let f = this.ramEnd - 1; f >= reservedFrames; f--) {
      this.free[this.freeCount++] = f;
      this.isFree[f] = FREE;
    }
  }

  get freeFrames(): number {
    return this.freeCount;
  }

  /** Takes one free frame (contents as they were), or -1 when none is left. */
  allocFrame(): number {
    if (this.freeCount === 0) return -1;
    const f = this.free[--this.freeCount];
    this.take(f);
    return f;
  }

  /**
   * Takes `count` free frames with consecutive numbers (the lowest such run), or returns -1.
   * For multi-page extents (Xen's alloc_domheap_pages with order > 0).
   */
  allocContiguous(count: number): number {
    if (count === 1) return this.allocFrame();
    let run = 0;
    for (let f = 0; f < this.nrFrames; f++) {
      run = this.isFree[f] ? run + 1 : 0;
      if (run === count) {
        const first = f - count + 1;
        let w = 0;
        for (let i = 0; i < this.freeCount; i++) {
          const g = this.free[i];
          if (g < first || g > f) this.free[w++] = g;
        }
        this.freeCount = w;
        for (let g = first; g <= f; g++) this.take(g);
        return first;
      }
    }
    return -1;
  }

  /**
   * Returns a frame to the heap; with `scrub`, it is zeroed before anyone gets it again. Freeing
   * a free or out-of-range frame is a bug in the caller.
   */
  freeFrame(frame: number, scrub = false): void {
    if (frame < 0 || frame >= this.ramEnd || this.isFree[frame]) {
      throw new Error(`freeFrame(${frame}): not an allocated frame`);
    }
    this.isFree[frame] = scrub ? FREE_SCRUB : FREE;
    this.free[this.freeCount++] = frame;
  }

  /**
   * A frame leaves the heap: one freed to be scrubbed is zeroed now, when it is handed out, not
   * when it was freed. A frame a guest never wrote is never touched, so it costs the host no
   * memory (zeroing a dying domain's 16 MiB at once committed all of it and took seconds).
   */
  private take(frame: number): void {
    if (this.isFree[frame] === FREE_SCRUB) this.zeroFrame(frame);
    this.isFree[frame] = 0;
  }

  /**
   * Takes the free frames numbered first..end-1 out of the heap and returns them, for the
   * caller to free again later: allocations meanwhile come from the other frames (a test puts
   * a domain above 2 GiB this way).
   */
  withhold(first: number, end: number): Int32Array {
    const taken: number[] = [];
    let w = 0;
    for (let i = 0; i < this.freeCount; i++) {
      const f = this.free[i];
      if (f >= first && f < end) {
        taken.push(f);
        this.take(f);
      } else this.free[w++] = f;
    }
    this.freeCount = w;
    return Int32Array.from(taken);
  }

  /** addr may be an int32 or a uint32 (bit 31 set: above 2 GiB). */
  read32(addr: number): number {
    return this.view.getUint32(addr >>> 0, true);
  }

  write32(addr: number, value: number): void {
    this.view.setUint32(addr >>> 0, value >>> 0, true);
  }

  /**
   * Zeroes a frame, from its first non-zero word: reading a frame the guests never wrote maps
   * the host's shared zero page, where a fill would commit memory nobody used (a dying 16 MiB
   * domain's untouched frames are most of it).
   */
  zeroFrame(frame: number): void {
    const w = this.words;
    const end = (frame + 1) * (FRAME_SIZE >> 2);
    let i = frame * (FRAME_SIZE >> 2);
    while (i < end && w[i] === 0) i++;
    if (i < end) w.fill(0, i, end);
  }
}
