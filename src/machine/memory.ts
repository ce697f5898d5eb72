/**
 * Machine memory: one ArrayBuffer of 4 KiB frames, and the heap allocator that hands frames
 * to the hypervisor. Knows nothing of Xen: ownership and types are the hypervisor's business.
 */
export const FRAME_SIZE = 4096;
export const FRAME_SHIFT = 12;
export const FRAMES_PER_MIB = 2 ** 20 / FRAME_SIZE;
/**
 * The most machine memory modelled: machine addresses live in signed 32-bit integers (frame
 * numbers shifted by 12, the CPU's TLB entries), so the machine ends below 2 GiB.
 */
export const MAX_MACHINE_MIB = 2048;

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
      `--machine-memory ${n}: at most ${MAX_MACHINE_MIB} MiB (tsxen keeps machine addresses in signed 32-bit integers)`,
    );
  if (n > hostMiB) throw new Error(`--machine-memory ${n}: this host has ${hostMiB} MiB of memory`);
  return n;
}

export class MachineMemory {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly nrFrames: number;
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
    this.bytes = new Uint8Array(this.nrFrames * FRAME_SIZE);
    this.view = new DataView(this.bytes.buffer);
    this.free = new Int32Array(this.nrFrames);
    this.isFree = new Uint8Array(this.nrFrames);
    for (let f = this.nrFrames - 1; f >= reservedFrames; f--) {
      this.free[this.freeCount++] = f;
      this.isFree[f] = 1;
    }
  }

  get freeFrames(): number {
    return this.freeCount;
  }

  /** Takes one free frame (contents as they were), or -1 when none is left. */
  allocFrame(): number {
    if (this.freeCount === 0) return -1;
    const f = this.free[--this.freeCount];
    this.isFree[f] = 0;
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
        for (let g = first; g <= f; g++) this.isFree[g] = 0;
        return first;
      }
    }
    return -1;
  }

  /** Returns a frame to the heap. Freeing a free or out-of-range frame is a bug in the caller. */
  freeFrame(frame: number): void {
    if (frame < 0 || frame >= this.nrFrames || this.isFree[frame]) {
      throw new Error(`freeFrame(${frame}): not an allocated frame`);
    }
    this.isFree[frame] = 1;
    this.free[this.freeCount++] = frame;
  }

  read32(addr: number): number {
    return this.view.getUint32(addr, true);
  }

  write32(addr: number, value: number): void {
    this.view.setUint32(addr, value >>> 0, true);
  }

  zeroFrame(frame: number): void {
    this.bytes.fill(0, frame * FRAME_SIZE, (frame + 1) * FRAME_SIZE);
  }
}
