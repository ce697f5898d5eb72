/**
 * A small WebAssembly binary writer: the opcodes the block generator uses (i32 and a few i64
 * operations, loads and stores, structured control, calls) and a module of functions that
 * import one memory and some JS functions. No validation beyond what WebAssembly.Module does.
 */

export const I32 = 0x7f;
export const I64 = 0x7e;
/** Block type of a block/loop/if that leaves nothing. */
export const VOID = 0x40;

/** Opcodes (WebAssembly core spec, 5.4). */
export const Op = {
  unreachable: 0x00,
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  else: 0x05,
  end: 0x0b,
  br: 0x0c,
  brIf: 0x0d,
  brTable: 0x0e,
  return: 0x0f,
  call: 0x10,
  callIndirect: 0x11,
  drop: 0x1a,
  select: 0x1b,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  load: 0x28,
  load8s: 0x2c,
  load8u: 0x2d,
  load16s: 0x2e,
  load16u: 0x2f,
  store: 0x36,
  store8: 0x3a,
  store16: 0x3b,
  const: 0x41,
  eqz: 0x45,
  eq: 0x46,
  ne: 0x47,
  ltS: 0x48,
  ltU: 0x49,
  gtS: 0x4a,
  gtU: 0x4b,
  leS: 0x4c,
  leU: 0x4d,
  geS: 0x4e,
  geU: 0x4f,
  i64Ne: 0x52,
  popcnt: 0x69,
  add: 0x6a,
  sub: 0x6b,
  mul: 0x6c,
  and: 0x71,
  or: 0x72,
  xor: 0x73,
  shl: 0x74,
  shrS: 0x75,
  shrU: 0x76,
  rotl: 0x77,
  rotr: 0x78,
  i64Mul: 0x7e,
  i64DivU: 0x80,
  i64Or: 0x84,
  i64Shl: 0x86,
  i64ShrU: 0x88,
  wrap: 0xa7,
  i64ExtendS: 0xac,
  i64ExtendU: 0xad,
} as const;

/** Unsigned LEB128. */
export function uleb(out: number[], v: number): void {
  let x = v >>> 0;
  do {
    const b = x & 0x7f;
    x >>>= 7;
    out.push(x !== 0 ? b | 0x80 : b);
  } while (x !== 0);
}

/** Signed LEB128 of an int32. */
export function sleb(out: number[], v: number): void {
  let x = v | 0;
  for (;;) {
    const b = x & 0x7f;
    x >>= 7;
    if ((x === 0 && (b & 0x40) === 0) || (x === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return;
    }
    out.push(b | 0x80);
  }
}

/** A function body under construction. */
export class Code {
  readonly b: number[] = [];
  op(...ops: number[]): this {
    for (const o of ops) this.b.push(o);
    return this;
  }
  i32(v: number): this {
    this.b.push(Op.const);
    sleb(this.b, v);
    return this;
  }
  i64(v: number): this {
    this.b.push(0x42);
    sleb(this.b, v);
    return this;
  }
  get(l: number): this {
    this.b.push(Op.localGet);
    uleb(this.b, l);
    return this;
  }
  set(l: number): this {
    this.b.push(Op.localSet);
    uleb(this.b, l);
    return this;
  }
  tee(l: number): this {
    this.b.push(Op.localTee);
    uleb(this.b, l);
    return this;
  }
  /** A load or store (op) at address + offset (an unsigned 32-bit constant). */
  mem(op: number, offset: number): this {
    this.b.push(op);
    // Alignment hint: none assumed (guest accesses may be unaligned).
    this.b.push(0);
    uleb(this.b, offset);
    return this;
  }
  call(f: number): this {
    this.b.push(Op.call);
    uleb(this.b, f);
    return this;
  }
  br(op: number, depth: number): this {
    this.b.push(op);
    uleb(this.b, depth);
    return this;
  }
}

export interface FuncType {
  params: number[];
  results: number[];
}

export interface ModuleSpec {
  types: FuncType[];
  /** Functions imported from module "i" under these names, with their type index. */
  imports: { name: string; type: number }[];
  /** Pages the imported memory "i"."m" has at least. */
  memPages: number;
  /** The module imports a funcref table "i"."t" too (for call_indirect). */
  table?: boolean;
  funcs: { type: number; locals: number[]; body: number[] }[];
  /** Exported functions by index (imports first). */
  exports: { name: string; func: number }[];
}

function name(out: number[], s: string): void {
  uleb(out, s.length);
  for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i));
}

/**
 * The module's bytes. Built as a list of parts copied once into the result (function bodies
 * are large: copying them byte by byte into section arrays cost more than generating them).
 */
export function moduleBytes(m: ModuleSpec): Uint8Array<ArrayBuffer> {
  const parts: number[][] = [[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]];
  const size = (ps: number[][]) => ps.reduce((n, p) => n + p.length, 0);
  const section = (id: number, body: number[][]) => {
    const head = [id];
    uleb(head, size(body));
    parts.push(head, ...body);
  };
  const types: number[] = [];
  uleb(types, m.types.length);
  for (const t of m.types) {
    types.push(0x60);
    uleb(types, t.params.length);
    types.push(...t.params);
    uleb(types, t.results.length);
    types.push(...t.results);
  }
  section(1, [types]);
  const imports: number[] = [];
  uleb(imports, m.imports.length + (m.table === true ? 2 : 1)); // the functions, the memory, the table
  for (const im of m.imports) {
    name(imports, "i");
    name(imports, im.name);
    imports.push(0x00);
    uleb(imports, im.type);
  }
  name(imports, "i");
  name(imports, "m");
  imports.push(0x02, 0x00);
  uleb(imports, m.memPages);
  if (m.table === true) {
    name(imports, "i");
    name(imports, "t");
    imports.push(0x01, 0x70, 0x00, 0x00); // funcref, at least 0 entries
  }
  section(2, [imports]);
  const funcs: number[] = [];
  uleb(funcs, m.funcs.length);
  for (const f of m.funcs) uleb(funcs, f.type);
  section(3, [funcs]);
  const exports: number[] = [];
  uleb(exports, m.exports.length);
  for (const e of m.exports) {
    name(exports, e.name);
    exports.push(0x00);
    uleb(exports, e.func);
  }
  section(7, [exports]);
  const code: number[][] = [[]];
  uleb(code[0], m.funcs.length);
  for (const f of m.funcs) {
    // Locals in runs of one type.
    const runs: [number, number][] = [];
    for (const t of f.locals) {
      const last = runs[runs.length - 1];
      if (last !== undefined && last[1] === t) last[0]++;
      else runs.push([1, t]);
    }
    const locals: number[] = [];
    uleb(locals, runs.length);
    for (const [n, t] of runs) {
      uleb(locals, n);
      locals.push(t);
    }
    const head: number[] = [];
    uleb(head, locals.length + f.body.length + 1);
    code.push(head, locals, f.body, [Op.end]);
  }
  section(10, code);
  const out = new Uint8Array(size(parts));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
