/**
 * Domain configuration files in the syntax of Xen's user manual (chapter "Domain
 * Configuration"): Python-like assignments of strings, integers and lists, one per line
 * (a bracketed list may span lines), `#` comments.
 *
 *     kernel = "/boot/vmlinuz-2.6.9-xenU"
 *     memory = 64
 *     name   = "VM%d" % vmid
 *     disk   = ['phy:hda1,sda1,r']
 *
 * xend executed these files as Python. We never execute anything: a tokenizer and a small
 * expression parser accept literals, earlier variables, `+ - * %` and `"..." % value`
 * formatting (enough for the manual's xmexample2 with its `vmid` variable), and every other
 * line is an error naming file:line:column.
 */

import { blkdevNameToNumber } from "./backends/vdev.js";

export type ConfigValue = string | number | boolean | null | ConfigValue[];

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly column: number,
    readonly detail: string,
  ) {
    super(`${file}:${line}:${column}: ${detail}`);
    this.name = "ConfigError";
  }
}

/** What to do when the domain powers off, reboots or crashes (Xen's on_* settings). */
export type ExitAction = "destroy" | "restart" | "preserve";
const EXIT_ACTIONS: readonly ExitAction[] = ["destroy", "restart", "preserve"];
export type AbiName = "2005-03" | "2005-07";
const ABIS: readonly AbiName[] = ["2005-03", "2005-07"];

/** A domain's configuration after checking: what the toolstack needs to build and run it. */
export interface DomainConfig {
  name: string;
  /** Path of the kernel image (relative paths are relative to the config file). */
  kernel: string;
  /** Optional initial ramdisk, given to the guest as its module. */
  ramdisk?: string;
  memoryMiB: number;
  /** Physical CPU to run on; -1 lets the toolstack choose. */
  cpu: number;
  vcpus: number;
  /** The kernel command line built from root, ip settings and extra, as xm did. */
  cmdline: string;
  onPoweroff: ExitAction;
  onReboot: ExitAction;
  onCrash: ExitAction;
  abi: AbiName;
  /** Virtual block devices (disk = [...]); absent in configurations saved before there were any. */
  disks?: DiskSpec[];
  /** Virtual network interfaces (vif = [...], nics = N); absent in older saved configurations. */
  vifs?: VifSpec[];
  /** Settings accepted but without effect here, each with why (shown by xm create). */
  warnings: string[];
}

/** One entry of disk = [...]: 'file:/path/root.img,sda1,w'. */
export interface DiskSpec {
  /** The image file (relative paths are relative to the configuration file). */
  path: string;
  /** The device name the guest sees, as written ("sda1"), and its number (0x801). */
  dev: string;
  vdev: number;
  /** Read-write or read-only. */
  writable: boolean;
  /** "w!" / "r!": share the image even if another domain has it (xend's override). */
  force: boolean;
}

/** One entry of vif = [...]: 'mac=00:16:3e:01:02:03, bridge=xenbr0'. */
export interface VifSpec {
  /** Lower-case, colon-separated. */
  mac: string;
  bridge: string;
}

/** The bridge a vif joins unless it names one (xend's default). */
export const DEFAULT_BRIDGE = "xenbr0";

/** A random locally-chosen MAC in Xen's range 00:16:3e (with the multicast bit clear). */
export function randomMac(): string {
  const b = [
    0x00,
    0x16,
    0x3e,
    Math.floor(Math.random() * 128),
    Math.floor(Math.random() * 256),
    Math.floor(Math.random() * 256),
  ];
  return b.map((x) => x.toString(16).padStart(2, "0")).join(":");
}

/** Parses one vif entry (comma-separated key=value: mac, bridge); throws an Error saying what is wrong. */
export function parseVifSpec(text: string): VifSpec {
  let mac: string | undefined;
  let bridge = DEFAULT_BRIDGE;
  for (const part of text
    .split(",")
    .map((p) => p.trim())
    .filter((p) => p !== "")) {
    const eq = part.indexOf("=");
    const key = eq < 0 ? part : part.slice(0, eq).trim();
    const value = eq < 0 ? "" : part.slice(eq + 1).trim();
    if (key === "mac") {
      if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(value))
        throw new Error(`vif "${text}": mac must look like 00:16:3e:01:02:03, not "${value}"`);
      if ((Number.parseInt(value.slice(0, 2), 16) & 1) !== 0)
        throw new Error(`vif "${text}": ${value} is a multicast address; a vif needs a unicast MAC`);
      mac = value.toLowerCase();
    } else if (key === "bridge") {
      if (!/^[A-Za-z0-9][\w.-]{0,14}$/.test(value))
        throw new Error(`vif "${text}": "${value}" is not a bridge name`);
      bridge = value;
    } else if (key !== "ip" && key !== "script" && key !== "vifname" && key !== "type") {
      throw new Error(`vif "${text}": tsxen knows mac= and bridge=, not "${key}"`);
    }
  }
  return { mac: mac ?? randomMac(), bridge };
}

/** Parses one disk entry 'file:PATH,DEV,MODE' (MODE r, w, r! or w!); throws an Error saying what is wrong. */
export function parseDiskSpec(text: string): DiskSpec {
  const parts = text.split(",").map((p) => p.trim());
  if (parts.length !== 3)
    throw new Error(
      `disk "${text}" must be 'file:/path/image,DEVICE,MODE' (like 'file:/srv/root.img,sda1,w')`,
    );
  const [uname, dev, mode] = parts;
  const colon = uname.indexOf(":");
  const type = colon < 0 ? "" : uname.slice(0, colon);
  const path = uname.slice(colon + 1);
  if (type !== "file")
    throw new Error(
      `disk "${text}": tsxen serves raw image files ('file:/path/image'), not ${type === "" ? "a bare path" : `${type}: devices`}`,
    );
  if (path === "") throw new Error(`disk "${text}" names no image file`);
  const vdev = blkdevNameToNumber(dev);
  if (vdev === null)
    throw new Error(
      `disk "${text}": "${dev}" is not a device name like sda1, sdb, hda or hdb2 (or a hex number)`,
    );
  if (!/^[rw]!?$/.test(mode))
    throw new Error(`disk "${text}": the mode must be r or w (or r!, w!), not "${mode}"`);
  return { path, dev, vdev, writable: mode[0] === "w", force: mode.endsWith("!") };
}

// ------------------------------------------------------------------------------------ lexer

type TokenKind = "name" | "string" | "number" | "op" | "newline" | "indent" | "dedent" | "eof";
interface Token {
  kind: TokenKind;
  text: string;
  value?: string | number;
  line: number;
  column: number;
}

/** Longest first, so that "==" is not read as "=" "=". */
const OPERATORS = [
  "==",
  "!=",
  "<=",
  ">=",
  "//",
  "+=",
  "-=",
  "*=",
  "=",
  "[",
  "]",
  "(",
  ")",
  ",",
  ":",
  ".",
  "+",
  "-",
  "*",
  "/",
  "%",
  "<",
  ">",
];
const ESCAPES: Record<string, string> = {
  n: "\n",
  t: "\t",
  r: "\r",
  "\\": "\\",
  "'": "'",
  '"': '"',
  "0": "\0",
};

/** What the configuration language is, for the errors that meet something outside it. */
const SUBSET =
  "tsxen reads a subset of Python: assignments, if/elif/else, import os/sys, int(), str(), arithmetic, comparisons, % formatting and lists";

function tokenize(file: string, text: string): Token[] {
  const tokens: Token[] = [];
  let line = 1;
  let col = 1;
  let depth = 0; // inside brackets, newlines do not end a statement (as in Python)
  let i = 0;
  let lineStart = true;
  const indents = [0];
  const fail = (msg: string, c = col): never => {
    throw new ConfigError(file, line, c, msg);
  };
  const push = (kind: TokenKind, t: string, column = col): void =>
    void tokens.push({ kind, text: t, line, column });
  while (i < text.length) {
    if (lineStart && depth === 0) {
      // Python's blocks: a deeper line opens one, a shallower one closes those it leaves.
      lineStart = false;
      let width = 0;
      let j = i;
      for (; text[j] === " " || text[j] === "\t"; j++)
        width = text[j] === "\t" ? (width + 8) & ~7 : width + 1;
      col += j - i;
      i = j;
      const next = text[i];
      if (next !== undefined && next !== "\n" && next !== "\r" && next !== "#") {
        if (width > indents[indents.length - 1]) {
          indents.push(width);
          push("indent", "");
        }
        while (width < indents[indents.length - 1]) {
          indents.pop();
          push("dedent", "");
        }
        if (width !== indents[indents.length - 1])
          fail("this line's indentation matches no enclosing block", 1);
      }
      continue;
    }
    const ch = text[i];
    if (ch === "\n") {
      const last = tokens[tokens.length - 1];
      // Blank lines end nothing (as in Python): one newline per statement.
      if (depth === 0 && last !== undefined && last.kind !== "newline") push("newline", "\n");
      i++;
      line++;
      col = 1;
      lineStart = depth === 0;
      continue;
    }
    if (ch === " " || ch === "\t" || ch === "\r") {
      i++;
      col++;
      continue;
    }
    if (ch === "#") {
      while (i < text.length && text[i] !== "\n") i++;
      continue;
    }
    if (ch === "\\" && text[i + 1] === "\n") {
      i += 2;
      line++;
      col = 1;
      continue;
    }
    const start = col;
    if (ch === '"' || ch === "'") {
      let j = i + 1;
      let s = "";
      for (;;) {
        if (j >= text.length || text[j] === "\n")
          fail(`unterminated string (it opens with ${ch} here)`, start);
        const c = text[j];
        if (c === ch) break;
        if (c === "\\") {
          const e = text[j + 1];
          if (e === undefined || e === "\n") fail("unterminated string", start);
          s += ESCAPES[e] ?? `\\${e}`;
          j += 2;
          continue;
        }
        s += c;
        j++;
      }
      tokens.push({ kind: "string", text: text.slice(i, j + 1), value: s, line, column: start });
      col += j + 1 - i;
      i = j + 1;
      continue;
    }
    const num = /^(0[xX][0-9a-fA-F]+|\d+)/.exec(text.slice(i, i + 40));
    if (num) {
      const after = text[i + num[0].length];
      if (after !== undefined && /[\w.]/.test(after)) {
        const word = /^[\w.]+/.exec(text.slice(i, i + 40))?.[0] ?? num[0];
        fail(`${word} is not a whole number (settings take whole numbers, strings in quotes or lists)`);
      }
      const v = Number(num[0]);
      if (!Number.isSafeInteger(v)) fail(`number ${num[0]} is too large`);
      tokens.push({ kind: "number", text: num[0], value: v, line, column: start });
      i += num[0].length;
      col += num[0].length;
      continue;
    }
    const name = /^[A-Za-z_]\w*/.exec(text.slice(i, i + 200));
    if (name) {
      push("name", name[0]);
      i += name[0].length;
      col += name[0].length;
      continue;
    }
    const op = OPERATORS.find((o) => text.startsWith(o, i));
    if (op !== undefined) {
      if (op === "[" || op === "(") depth++;
      if (op === "]" || op === ")") depth = Math.max(0, depth - 1);
      push("op", op);
      i += op.length;
      col += op.length;
      continue;
    }
    fail(`unexpected character "${ch}"`);
  }
  const last = tokens[tokens.length - 1];
  if (last !== undefined && last.kind !== "newline") push("newline", "\n");
  for (let k = indents.length; k > 1; k--) push("dedent", "");
  push("eof", "");
  return tokens;
}

// ----------------------------------------------------------------------------------- parser

const CONSTANTS: Record<string, ConfigValue> = { True: true, False: false, None: null };
/** Imports accepted because configs carry them by habit; nothing of theirs can be used. */
const HARMLESS_MODULES = new Set(["os", "sys", "re", "string"]);
/** Python statements outside the subset: named in the error rather than misread. */
const UNSUPPORTED_STATEMENTS = new Set([
  "def",
  "class",
  "for",
  "while",
  "try",
  "except",
  "finally",
  "raise",
  "return",
  "lambda",
  "with",
  "del",
  "global",
  "print",
  "exec",
  "assert",
  "yield",
  "break",
  "continue",
]);
const COMPARISONS = new Set(["==", "!=", "<", "<=", ">", ">="]);

/** Python's truth: 0, "", [], None and False are false. */
function truthy(v: ConfigValue): boolean {
  if (Array.isArray(v)) return v.length > 0;
  return v !== null && v !== false && v !== 0 && v !== "";
}

/** Python's str() of a value. */
function pyStr(v: ConfigValue): string {
  if (typeof v === "string") return v;
  return pyRepr(v);
}

/** Python's repr() of a value. */
function pyRepr(v: ConfigValue): string {
  if (v === null) return "None";
  if (v === true) return "True";
  if (v === false) return "False";
  if (typeof v === "number") return String(v);
  if (typeof v === "string") return `'${v.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
  return `[${v.map(pyRepr).join(", ")}]`;
}

function equal(a: ConfigValue, b: ConfigValue): boolean {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, k) => equal(x, b[k]));
  // As in Python, True == 1 and False == 0.
  const n = (x: ConfigValue): ConfigValue => (x === true ? 1 : x === false ? 0 : x);
  return n(a) === n(b);
}

class Parser {
  private pos = 0;
  /** Inside an untaken if/else branch: the syntax is read, nothing is evaluated or assigned. */
  private skipping = false;
  private readonly modules = new Set<string>();
  private onAssign: (name: string, value: ConfigValue, line: number) => void = () => {};

  constructor(
    private readonly file: string,
    private readonly tokens: Token[],
    private readonly vars: Map<string, ConfigValue>,
  ) {}

  private get tok(): Token {
    return this.tokens[this.pos];
  }

  private fail(msg: string, t: Token = this.tok): never {
    throw new ConfigError(this.file, t.line, t.column, msg);
  }

  private describe(t: Token): string {
    if (t.kind === "newline") return "the end of the line";
    if (t.kind === "eof") return "the end of the file";
    if (t.kind === "indent" || t.kind === "dedent") return "a change of indentation";
    return `"${t.text}"`;
  }

  private isOp(text: string): boolean {
    return this.tok.kind === "op" && this.tok.text === text;
  }

  private isName(text: string): boolean {
    return this.tok.kind === "name" && this.tok.text === text;
  }

  private expectOp(text: string, what: string): void {
    if (!this.isOp(text)) this.fail(`expected "${text}" ${what}, found ${this.describe(this.tok)}`);
    this.pos++;
  }

  /** The whole file: statements; `onAssign` sees each assignment that runs, with its line. */
  parseFile(onAssign: (name: string, value: ConfigValue, line: number) => void): void {
    this.onAssign = onAssign;
    while (this.tok.kind !== "eof") this.statement();
  }

  /** One value and nothing after it: a command line's name=value. */
  wholeValue(): ConfigValue {
    const v = this.expression();
    this.endOfStatement("the value");
    return v;
  }

  /** After a value the statement ends: the newline (or the end of the file). */
  private endOfStatement(what: string): void {
    const t = this.tok;
    if (t.kind === "newline") this.pos++;
    else if (t.kind !== "eof") this.fail(`unexpected ${this.describe(t)} after ${what}`, t);
  }

  private statement(): void {
    const t = this.tok;
    if (t.kind === "newline") {
      this.pos++;
      return;
    }
    if (t.kind === "indent")
      this.fail("unexpected indentation (only the lines of an if, elif or else block are indented)");
    if (t.kind !== "name") this.fail(`expected a setting name (like memory = 64), found ${this.describe(t)}`);
    switch (t.text) {
      case "import":
        this.importStatement();
        return;
      case "from":
        this.fail(`"from ... import" is not supported: ${SUBSET}`);
        break;
      case "if":
        this.ifStatement();
        return;
      case "pass":
        this.pos++;
        this.endOfStatement('"pass"');
        return;
      case "elif":
      case "else":
        this.fail(`"${t.text}" without an if before it`);
    }
    if (UNSUPPORTED_STATEMENTS.has(t.text)) this.fail(`"${t.text}" is not supported: ${SUBSET}`);
    this.assignment();
  }

  /** import os, sys: accepted and without effect; other modules are refused by name. */
  private importStatement(): void {
    this.pos++;
    for (;;) {
      const m = this.tok;
      if (m.kind !== "name") this.fail(`expected a module name after "import", found ${this.describe(m)}`);
      if (!HARMLESS_MODULES.has(m.text))
        this.fail(
          `import ${m.text} is not supported: tsxen accepts import os and import sys (and nothing uses them)`,
        );
      this.pos++;
      this.modules.add(m.text);
      if (!this.isOp(",")) break;
      this.pos++;
    }
    this.endOfStatement("the import");
  }

  private ifStatement(): void {
    const outer = this.skipping;
    let done = outer; // a branch has run, or the whole if is in an untaken branch
    do {
      this.pos++; // "if" or "elif"
      this.skipping = done;
      const cond = this.expression();
      const run = !done && truthy(cond);
      this.skipping = !run;
      this.block();
      done ||= run;
    } while (this.isName("elif"));
    if (this.isName("else")) {
      this.pos++;
      this.skipping = done;
      this.block();
    }
    this.skipping = outer;
  }

  /** ":" then a statement on the same line, or an indented block on the lines below. */
  private block(): void {
    this.expectOp(":", "at the end of the if, elif or else line");
    if (this.tok.kind !== "newline") {
      this.statement();
      return;
    }
    const indent = this.tokens[++this.pos];
    if (indent.kind !== "indent")
      this.fail('expected an indented block after the line ending with ":"', indent);
    this.pos++;
    // (this.tok is re-read each time: the statements move on.)
    const here = (): TokenKind => this.tok.kind;
    while (here() !== "dedent" && here() !== "eof") this.statement();
    if (here() === "dedent") this.pos++;
  }

  /** name = value, or name += value (-=, *=). */
  private assignment(): void {
    const target = this.tok;
    if (target.text in CONSTANTS) this.fail(`cannot assign to ${target.text}`);
    this.pos++;
    const op = this.tok;
    if (op.kind !== "op" || !["=", "+=", "-=", "*="].includes(op.text)) {
      if (op.kind === "op" && (op.text === "." || op.text === "(")) {
        const attr = this.tokens[this.pos + 1];
        const what = op.text === "(" ? "()" : `.${attr.kind === "name" ? attr.text : ""}`;
        this.fail(`"${target.text}${what}" is not supported: ${SUBSET}`, target);
      }
      this.fail(
        `expected "=" after "${target.text}" (settings are written name = value), found ${this.describe(op)}`,
      );
    }
    this.pos++;
    let value = this.expression();
    this.endOfStatement(`the value of "${target.text}"`);
    if (this.skipping) return;
    if (op.text !== "=") value = this.binary({ ...op, text: op.text[0] }, this.lookup(target), value);
    this.vars.set(target.text, value);
    this.onAssign(target.text, value, target.line);
  }

  private lookup(t: Token): ConfigValue {
    if (t.text in CONSTANTS) return CONSTANTS[t.text];
    const v = this.vars.get(t.text);
    if (v === undefined && !this.skipping)
      this.fail(
        `"${t.text}" is not defined (set it earlier in the file or on the command line as ${t.text}=value)`,
        t,
      );
    return v ?? null;
  }

  /** Whether the expression starting here is `a if condition else b`: an "if" at this depth. */
  private conditionalAhead(): boolean {
    let depth = 0;
    for (let k = this.pos; ; k++) {
      const t = this.tokens[k];
      if (t.kind !== "op" && t.kind !== "name" && t.kind !== "string" && t.kind !== "number") return false;
      if (t.kind === "op") {
        if (t.text === "(" || t.text === "[") depth++;
        else if (t.text === ")" || t.text === "]") {
          if (depth === 0) return false;
          depth--;
        } else if (depth === 0 && (t.text === "," || t.text === ":")) return false;
      } else if (depth === 0 && t.kind === "name" && (t.text === "if" || t.text === "else")) {
        return t.text === "if";
      }
    }
  }

  /** A value; Python's conditional expression `a if condition else b` evaluates the condition first. */
  expression(): ConfigValue {
    if (!this.conditionalAhead()) return this.orTest();
    const start = this.pos;
    const outer = this.skipping;
    // a comes first in the text but counts only if the condition holds: an error in it waits.
    // (Evaluating has no effects, so reading a once is enough, and nesting stays linear.)
    let a: ConfigValue = null;
    let aError: ConfigError | null = null;
    try {
      a = this.orTest();
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      aError = e;
      this.pos = start;
      this.skipping = true;
      this.orTest();
    }
    this.skipping = outer;
    if (!this.isName("if")) this.fail(`unexpected ${this.describe(this.tok)}`);
    this.pos++;
    const cond = truthy(this.orTest());
    if (!this.isName("else"))
      this.fail(`expected "else" in "... if ... else ...", found ${this.describe(this.tok)}`);
    this.pos++;
    this.skipping = outer || cond;
    const b = this.expression();
    this.skipping = outer;
    if (!cond) return b;
    if (aError !== null) throw aError;
    return a;
  }

  /** `or` and `and` short-circuit, as in Python: the side not needed is not evaluated. */
  private orTest(): ConfigValue {
    return this.shortCircuit("or", true, () => this.andTest());
  }

  private andTest(): ConfigValue {
    return this.shortCircuit("and", false, () => this.notTest());
  }

  /** `left op right ...`: once left's truth is `decidedBy`, the rest is only skipped over. */
  private shortCircuit(op: string, decidedBy: boolean, operand: () => ConfigValue): ConfigValue {
    let left = operand();
    while (this.isName(op)) {
      this.pos++;
      const outer = this.skipping;
      const decided = truthy(left) === decidedBy;
      this.skipping = outer || decided;
      const right = operand();
      this.skipping = outer;
      if (!decided) left = right;
    }
    return left;
  }

  private notTest(): ConfigValue {
    if (this.isName("not")) {
      this.pos++;
      return !truthy(this.notTest());
    }
    return this.comparison();
  }

  /** a < b <= c chains as in Python; also in, not in, is, is not. */
  private comparison(): ConfigValue {
    let left = this.arith();
    let result: ConfigValue = true;
    let chained = false;
    for (;;) {
      const t = this.tok;
      let op: string;
      if (t.kind === "op" && COMPARISONS.has(t.text)) op = t.text;
      else if (this.isName("in")) op = "in";
      else if (this.isName("is")) op = "is";
      else if (this.isName("not") && this.tokens[this.pos + 1].text === "in") op = "not in";
      else break;
      this.pos += op === "not in" ? 2 : 1;
      if (op === "is" && this.isName("not")) {
        op = "is not";
        this.pos++;
      }
      const right = this.arith();
      chained = true;
      if (!this.skipping && result === true) result = this.compare({ ...t, text: op }, left, right);
      left = right;
    }
    return chained ? (this.skipping ? null : result) : left;
  }

  private compare(op: Token, a: ConfigValue, b: ConfigValue): boolean {
    switch (op.text) {
      case "==":
        return equal(a, b);
      case "!=":
        return !equal(a, b);
      case "is":
        return a === b;
      case "is not":
        return a !== b;
      case "in":
      case "not in": {
        let found: boolean;
        if (Array.isArray(b)) found = b.some((x) => equal(x, a));
        else if (typeof b === "string" && typeof a === "string") found = b.includes(a);
        else this.fail(`cannot test ${typeName(a)} "in" ${typeName(b)}`, op);
        return op.text === "in" ? found : !found;
      }
    }
    const order =
      typeof a === "number" && typeof b === "number"
        ? a - b
        : typeof a === "string" && typeof b === "string"
          ? a < b
            ? -1
            : a > b
              ? 1
              : 0
          : this.fail(`cannot compare ${typeName(a)} and ${typeName(b)} with "${op.text}"`, op);
    if (op.text === "<") return order < 0;
    if (op.text === "<=") return order <= 0;
    if (op.text === ">") return order > 0;
    return order >= 0;
  }

  private arith(): ConfigValue {
    let left = this.term();
    while (this.isOp("+") || this.isOp("-")) {
      const op = this.tok;
      this.pos++;
      const right = this.term();
      left = this.binary(op, left, right);
    }
    return left;
  }

  private term(): ConfigValue {
    let left = this.unary();
    while (this.isOp("*") || this.isOp("%") || this.isOp("/") || this.isOp("//")) {
      const op = this.tok;
      this.pos++;
      const right = this.unary();
      left = this.binary(op, left, right);
    }
    return left;
  }

  private unary(): ConfigValue {
    if (this.isOp("-") || this.isOp("+")) {
      const op = this.tok;
      this.pos++;
      const v = this.unary();
      if (this.skipping) return null;
      if (typeof v !== "number") this.fail(`only a number can be signed with "${op.text}"`, op);
      return op.text === "-" ? -v : v;
    }
    return this.postfix();
  }

  /** A value, then indexes: disk[0], name[-1]. */
  private postfix(): ConfigValue {
    let v = this.primary();
    while (this.isOp("[")) {
      const open = this.tok;
      this.pos++;
      const index = this.expression();
      this.expectOp("]", "after the index");
      if (this.skipping) continue;
      if (!Array.isArray(v) && typeof v !== "string") this.fail(`cannot index ${typeName(v)}`, open);
      if (typeof index !== "number")
        this.fail(`an index must be a whole number, not ${typeName(index)}`, open);
      const k = index < 0 ? v.length + index : index;
      if (k < 0 || k >= v.length) this.fail(`index ${index} is out of range (length ${v.length})`, open);
      v = v[k];
    }
    return v;
  }

  private primary(): ConfigValue {
    const t = this.tok;
    switch (t.kind) {
      case "string": {
        this.pos++;
        let s = t.value as string;
        // Adjacent string literals concatenate, as in Python.
        while (this.tok.kind === "string") {
          s += this.tok.value as string;
          this.pos++;
        }
        return s;
      }
      case "number":
        this.pos++;
        return t.value as number;
      case "name": {
        this.pos++;
        if (this.isOp(".")) {
          const attr = this.tokens[this.pos + 1];
          const what = `${t.text}.${attr?.kind === "name" ? attr.text : ""}`;
          if (this.modules.has(t.text))
            this.fail(
              `${what} is not supported: import ${t.text} is accepted, but nothing of it can be used`,
              t,
            );
          this.fail(`"${what}" is not supported: ${SUBSET}`, t);
        }
        if (this.isOp("(")) return this.call(t);
        if (UNSUPPORTED_STATEMENTS.has(t.text)) this.fail(`"${t.text}" is not supported: ${SUBSET}`, t);
        return this.lookup(t);
      }
      case "op":
        if (t.text === "[" || t.text === "(") {
          const close = t.text === "[" ? "]" : ")";
          this.pos++;
          const items = this.items(t, close);
          // (x) is just x; (x,) and [x] are sequences.
          if (t.text === "(" && items.values.length === 1 && !items.sawComma) return items.values[0];
          return items.values;
        }
        this.fail(`expected a value, found ${this.describe(t)}`);
        break;
      default:
        this.fail(`expected a value, found ${this.describe(t)}`);
    }
  }

  /** Comma-separated values up to `close` (the opening bracket has been read). */
  private items(open: Token, close: string): { values: ConfigValue[]; sawComma: boolean } {
    const values: ConfigValue[] = [];
    let sawComma = false;
    while (!this.isOp(close)) {
      if (this.tok.kind === "eof")
        this.fail(`"${open.text}" opened at line ${open.line} is never closed`, open);
      values.push(this.expression());
      if (this.isOp(",")) {
        sawComma = true;
        this.pos++;
      } else if (!this.isOp(close)) {
        this.fail(`expected "," or "${close}" in the list, found ${this.describe(this.tok)}`);
      }
    }
    this.pos++;
    return { values, sawComma };
  }

  /** int(x[, base]) and str(x); no other function exists here. */
  private call(fn: Token): ConfigValue {
    if (fn.text !== "int" && fn.text !== "str")
      this.fail(`${fn.text}() is not supported: of Python's functions tsxen has int() and str()`, fn);
    const open = this.tok;
    this.pos++;
    const args = this.items(open, ")").values;
    const max = fn.text === "int" ? 2 : 1;
    if (args.length === 0 || args.length > max)
      this.fail(`${fn.text}() takes ${max === 1 ? "one value" : "a value and an optional base"}`, fn);
    if (this.skipping) return null;
    const [v, base] = args;
    if (fn.text === "str") return pyStr(v);
    if (base !== undefined && (typeof base !== "number" || base < 2 || base > 36 || typeof v !== "string"))
      this.fail("int(text, base) needs a string and a base from 2 to 36", fn);
    if (typeof v === "number") return v;
    if (typeof v === "boolean") return v ? 1 : 0;
    if (typeof v === "string") {
      const radix = (base as number | undefined) ?? 10;
      const digits = v.trim().replace(/^[+-]/, "");
      const ok =
        digits !== "" &&
        [...digits.toLowerCase()].every((c) => {
          const d = Number.parseInt(c, 36);
          return !Number.isNaN(d) && d < radix;
        });
      const n = Number.parseInt(v.trim(), radix);
      if (ok && Number.isSafeInteger(n)) return n;
    }
    this.fail(`int() cannot read ${pyRepr(v)} as a whole number`, fn);
  }

  private binary(op: Token, a: ConfigValue, b: ConfigValue): ConfigValue {
    if (this.skipping) return null;
    const both = (type: string): boolean => typeof a === type && typeof b === type;
    const repeat = (seq: ConfigValue, n: ConfigValue): ConfigValue | undefined => {
      if (typeof n !== "number") return undefined;
      if (typeof seq === "string") return seq.repeat(Math.max(0, n));
      if (Array.isArray(seq)) return Array.from({ length: Math.max(0, n) }, () => seq).flat(1);
      return undefined;
    };
    switch (op.text) {
      case "+":
        if (both("number")) return (a as number) + (b as number);
        if (both("string")) return (a as string) + (b as string);
        if (Array.isArray(a) && Array.isArray(b)) return [...a, ...b];
        break;
      case "-":
        if (both("number")) return (a as number) - (b as number);
        break;
      case "*": {
        if (both("number")) return (a as number) * (b as number);
        const r = repeat(a, b) ?? repeat(b, a);
        if (r !== undefined) return r;
        break;
      }
      case "/":
      case "//":
      case "%":
        if (both("number")) {
          // Whole numbers only: / divides as Python 2 (xm's Python) did, rounding down.
          if (b === 0) this.fail("division by zero", op);
          const q = Math.floor((a as number) / (b as number));
          return op.text === "%" ? (a as number) - q * (b as number) : q;
        }
        if (op.text === "%" && typeof a === "string") return this.format(op, a, Array.isArray(b) ? b : [b]);
        break;
    }
    this.fail(`cannot apply "${op.text}" to ${typeName(a)} and ${typeName(b)}`, op);
  }

  /** Python's "fmt" % args for %s %r %d %i %x %X %%. */
  private format(op: Token, fmt: string, args: ConfigValue[]): string {
    let k = 0;
    const out = fmt.replace(/%([-0]?\d*)(.?)/g, (_m, flags: string, conv: string) => {
      if (conv === "%") return "%";
      if (!"srdixX".includes(conv) || conv === "")
        this.fail(`the % format "${fmt}" has %${flags}${conv}; tsxen knows %s %r %d %i %x %X %%`, op);
      if (k >= args.length) this.fail(`not enough values for the % format "${fmt}"`, op);
      const v = args[k++];
      let s: string;
      if (conv === "s") s = pyStr(v);
      else if (conv === "r") s = pyRepr(v);
      else {
        const n = typeof v === "boolean" ? Number(v) : v;
        if (typeof n !== "number") this.fail(`%${conv} needs a number, got ${typeName(v)}`, op);
        s = conv === "x" ? n.toString(16) : conv === "X" ? n.toString(16).toUpperCase() : String(n);
      }
      const width = Number.parseInt(flags.replace(/^[-0]/, ""), 10) || 0;
      if (flags.startsWith("-")) return s.padEnd(width);
      return s.padStart(width, flags.startsWith("0") ? "0" : " ");
    });
    if (k < args.length) this.fail(`too many values for the % format "${fmt}"`, op);
    return out;
  }
}

function typeName(v: ConfigValue): string {
  if (v === null) return "None";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "string") return "a string";
  if (typeof v === "number") return "a number";
  return "a boolean";
}

/**
 * A command-line `var=value`: the value is read as an expression when it looks like one
 * (a number, a quoted string, a list), otherwise taken as a plain string (xm create name=web).
 */
export function parseOverride(arg: string): [string, ConfigValue] {
  const eq = arg.indexOf("=");
  const name = arg.slice(0, eq).trim();
  if (eq < 1 || !/^[A-Za-z_]\w*$/.test(name))
    throw new Error(`"${arg}" is not a variable setting (expected name=value)`);
  const text = arg.slice(eq + 1);
  if (/^\s*(-?\d|0x|["'[(])/.test(text)) {
    const tokens = tokenize("command line", text.trim());
    const p = new Parser(`command line (${name})`, tokens, new Map());
    try {
      return [name, p.wholeValue()];
    } catch {
      // Not an expression after all: keep the text.
    }
  }
  return [name, text];
}

/**
 * Evaluates a configuration file into its variables. `overrides` (command-line var=value) are
 * defined before the file runs, so it can use them, and win over the file's own assignments.
 */
export function parseConfigText(
  file: string,
  text: string,
  overrides: ReadonlyMap<string, ConfigValue> = new Map(),
): { vars: Map<string, ConfigValue>; lines: Map<string, number> } {
  const vars = new Map<string, ConfigValue>(overrides);
  const lines = new Map<string, number>();
  const parser = new Parser(file, tokenize(file, text), vars);
  parser.parseFile((name, _value, line) => {
    lines.set(name, line);
    const o = overrides.get(name);
    if (o !== undefined) vars.set(name, o);
  });
  return { vars, lines };
}

// ------------------------------------------------------------------------------ checking

/** Settings of the manual that are meaningful only with devices tsxen does not have yet. */
const DEVICE_SETTINGS: Record<string, string> = {
  console: "consoles are served by the daemon's API, not TCP ports",
  builder: "tsxen has one domain builder (linux-style ELF)",
  vbd: "tsxen has no virtual block devices yet",
  pci: "PCI passthrough is not available to configuration files",
  backend: "tsxen has no split device drivers yet",
  netif: "tsxen has no virtual network interfaces yet",
  blkif: "tsxen has no virtual block devices yet",
};
/** Settings folded into the kernel command line (xm's create.py). */
const IP_SETTINGS = ["ip", "nfs_server", "gateway", "netmask", "hostname", "dhcp"];
const KNOWN = new Set([
  "kernel",
  "ramdisk",
  "memory",
  "maxmem",
  "name",
  "cpu",
  "vcpus",
  "extra",
  "root",
  "nfs_root",
  "restart",
  "on_poweroff",
  "on_reboot",
  "on_crash",
  "abi",
  "disk",
  "vif",
  "nics",
  ...IP_SETTINGS,
]);

/**
 * Checks the variables of a configuration file and turns them into a DomainConfig. `file`
 * names the source in errors; `defaultName` is used when the file sets no name.
 */
export function checkConfig(
  file: string,
  vars: ReadonlyMap<string, ConfigValue>,
  lines: ReadonlyMap<string, number>,
  defaultName: string,
): DomainConfig {
  const at = (key: string): string =>
    lines.has(key) ? `${file}:${lines.get(key)}` : `${file} (command line)`;
  const fail = (key: string, msg: string): never => {
    throw new Error(`${at(key)}: ${msg}`);
  };
  const str = (key: string): string | undefined => {
    const v = vars.get(key);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "string")
      fail(key, `${key} must be a string in quotes, like ${key} = "..."; it is ${typeName(v)}`);
    return v as string;
  };
  const int = (key: string, min: number, max: number): number | undefined => {
    const v = vars.get(key);
    if (v === undefined || v === null) return undefined;
    let n: number;
    if (typeof v === "number") n = v;
    else if (typeof v === "string" && /^-?\d+$/.test(v.trim())) n = Number(v.trim());
    else
      return fail(
        key,
        `${key} must be a whole number, like ${key} = ${Math.max(min, 1)}; it is ${typeName(v)}`,
      );
    if (n < min || n > max) fail(key, `${key} = ${n} is out of range (${min}..${max})`);
    return n;
  };
  const action = (key: string, dflt: ExitAction): ExitAction => {
    const v = str(key);
    if (v === undefined) return dflt;
    if (!(EXIT_ACTIONS as readonly string[]).includes(v))
      fail(key, `${key} must be one of ${EXIT_ACTIONS.join(", ")}, not "${v}"`);
    return v as ExitAction;
  };

  const warnings: string[] = [];
  for (const key of vars.keys()) {
    if (key in DEVICE_SETTINGS) warnings.push(`${at(key)}: ${key} ignored: ${DEVICE_SETTINGS[key]}`);
    else if (!KNOWN.has(key) && lines.has(key) && !/^[a-z]*_?vm?id$|^_/.test(key)) {
      // Python configs define helper variables; an unknown name is worth a word, not an error.
      warnings.push(`${at(key)}: "${key}" is not a setting tsxen knows; it is only a variable`);
    }
  }

  const kernel = str("kernel");
  if (kernel === undefined || kernel === "")
    throw new Error(`${file}: no kernel given (add a line like kernel = "/path/to/vmlinuz")`);
  const name = str("name") ?? defaultName;
  if (!/^[A-Za-z0-9][\w.+-]{0,63}$/.test(name)) {
    fail(
      "name",
      `name "${name}" is not usable: use letters, digits and . _ + - (at most 64, not starting with a symbol)`,
    );
  }
  if (name === "Domain-0") fail("name", `the name Domain-0 belongs to dom0`);
  const memoryMiB = int("memory", 1, 4096) ?? 32;
  const maxmem = int("maxmem", 1, 4096);
  if (maxmem !== undefined && maxmem !== memoryMiB)
    warnings.push(`${at("maxmem")}: maxmem ignored: use xm mem-max after create`);
  const cpu = int("cpu", -1, 31) ?? -1;
  const vcpus = int("vcpus", 1, 32) ?? 1;
  if (vcpus !== 1) fail("vcpus", `vcpus = ${vcpus}: the 2005-03 interface has one virtual CPU per domain`);
  const abi = str("abi") ?? "2005-03";
  if (!(ABIS as readonly string[]).includes(abi))
    fail("abi", `abi must be "2005-03" or "2005-07", not "${abi}"`);

  // restart = always | never | onreboot is the manual's older form of the on_* settings.
  let onPoweroff: ExitAction = "destroy";
  let onReboot: ExitAction = "restart";
  let onCrash: ExitAction = "destroy";
  const restart = str("restart");
  if (restart !== undefined) {
    if (restart === "always") onPoweroff = onReboot = onCrash = "restart";
    else if (restart === "never") onPoweroff = onReboot = onCrash = "destroy";
    else if (restart === "onreboot") onReboot = "restart";
    else fail("restart", `restart must be always, never or onreboot, not "${restart}"`);
  }
  onPoweroff = action("on_poweroff", onPoweroff);
  onReboot = action("on_reboot", onReboot);
  onCrash = action("on_crash", onCrash);

  // The command line as xm and xend built it (create.py's preprocess_ip and preprocess_nfs,
  // XendDomainInfo's vm_image_linux): ip=..., root= (a leading "root=" in the setting is
  // dropped), then extra with nfsroot=<server>:<path> put in front of it. (xend's string also
  // began with a space, which nothing reads.)
  const cmd: string[] = [];
  const ip = str("ip") ?? "";
  const dhcp = str("dhcp") ?? "off";
  if (ip !== "" || dhcp !== "off") {
    // xm's stand-in when no NFS server is named.
    const server = str("nfs_server") || "1.2.3.4";
    const [gateway, netmask, hostname] = ["gateway", "netmask", "hostname"].map((k) => str(k) ?? "");
    cmd.push(`ip=${ip}:${server}:${gateway}:${netmask}:${hostname}:eth0:${dhcp}`);
  }
  const root = str("root");
  if (root) cmd.push(`root=${root.replace(/^root=/, "")}`);
  let extra = str("extra") ?? "";
  const nfsRoot = str("nfs_root");
  if (nfsRoot) {
    const server = str("nfs_server");
    if (!server) fail("nfs_root", "nfs_root needs nfs_server (the NFS server's address), as xm required");
    extra = `nfsroot=${server}:${nfsRoot}${extra === "" ? "" : ` ${extra}`}`;
  }
  if (extra !== "") cmd.push(extra);
  const cmdline = cmd.join(" ");
  if (cmdline.length > 255)
    fail(
      lines.has("extra") ? "extra" : "root",
      `the kernel command line is ${cmdline.length} bytes; at most 255 fit in start_info`,
    );

  const disks: DiskSpec[] = [];
  const diskList = vars.get("disk");
  if (diskList !== undefined && diskList !== null) {
    if (!Array.isArray(diskList))
      fail("disk", `disk must be a list, like disk = ['file:/path/root.img,sda1,w']`);
    for (const entry of diskList as ConfigValue[]) {
      if (typeof entry !== "string")
        fail("disk", `each disk must be a string in quotes, not ${typeName(entry)}`);
      let d: DiskSpec | undefined;
      try {
        d = parseDiskSpec(entry as string);
      } catch (e) {
        fail("disk", (e as Error).message);
      }
      if (d === undefined) continue;
      if (disks.some((x) => x.vdev === d.vdev)) fail("disk", `two disks are both ${d.dev}`);
      disks.push(d);
    }
  }

  const vifs: VifSpec[] = [];
  const vifList = vars.get("vif");
  if (vifList !== undefined && vifList !== null) {
    if (!Array.isArray(vifList))
      fail("vif", `vif must be a list, like vif = ['mac=00:16:3e:01:02:03, bridge=xenbr0']`);
    for (const entry of vifList as ConfigValue[]) {
      if (typeof entry !== "string")
        fail("vif", `each vif must be a string in quotes, not ${typeName(entry)}`);
      let v: VifSpec | undefined;
      try {
        v = parseVifSpec(entry as string);
      } catch (e) {
        fail("vif", (e as Error).message);
      }
      if (v === undefined) continue;
      if (vifs.some((x) => x.mac === v.mac)) fail("vif", `two vifs have the MAC ${v.mac}`);
      vifs.push(v);
    }
  }
  // nics = N: that many interfaces, the vif list configuring the first ones (xm's rule).
  const nics = int("nics", 0, 8);
  if (nics !== undefined) {
    if (nics < vifs.length) fail("nics", `nics = ${nics} but vif lists ${vifs.length} interfaces`);
    while (vifs.length < nics) vifs.push({ mac: randomMac(), bridge: DEFAULT_BRIDGE });
  }

  return {
    name,
    kernel,
    ramdisk: str("ramdisk"),
    disks,
    vifs,
    memoryMiB,
    cpu,
    vcpus,
    cmdline,
    onPoweroff,
    onReboot,
    onCrash,
    abi: abi as AbiName,
    warnings,
  };
}

/** Parses and checks a configuration file's text. Throws ConfigError or Error naming file:line. */
export function parseDomainConfig(
  file: string,
  text: string,
  overrides: ReadonlyMap<string, ConfigValue> = new Map(),
): DomainConfig {
  const { vars, lines } = parseConfigText(file, text, overrides);
  const base = file.replace(/^.*[\\/]/, "").replace(/\.(cfg|conf|xm|sxp)$/, "");
  return checkConfig(file, vars, lines, base.replace(/[^\w.+-]/g, "_") || "domain");
}

/**
 * Does this look like a configuration file rather than a kernel image? ELF images start with
 * \x7fELF; a configuration file is text whose first statement is an assignment, an import or
 * another Python statement (which the parser then accepts or names as unsupported).
 */
export function looksLikeConfig(bytes: Uint8Array): boolean {
  if (bytes.length >= 4 && bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c && bytes[3] === 0x46)
    return false;
  const head = Buffer.from(bytes.subarray(0, 4096)).toString("latin1");
  // Binary bytes (controls other than tab, newline, carriage return, form feed): not text.
  for (let i = 0; i < head.length; i++) {
    const c = head.charCodeAt(i);
    if (c < 0x20 && c !== 9 && c !== 10 && c !== 12 && c !== 13) return false;
  }
  return /^\s*(#[^\n]*\n\s*)*([A-Za-z_]\w*\s*[-+*]?=[^=]|(import|from|if|def)\s)/.test(head);
}
