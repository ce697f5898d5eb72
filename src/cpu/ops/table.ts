/**
 * The handler table: one function per decoded id (see decode.ts for the id layout). Each
 * instruction group registers its handlers here; an id nobody registered raises #UD.
 */
import type { Cpu } from "../cpu.js";
import { OP_COUNT, opId } from "../decode.js";
import { UD } from "../regs.js";
import { registerAlu } from "./alu.js";
import { registerMove } from "./move.js";
import { registerString } from "./string.js";
import { registerSystem } from "./system.js";
import { registerX87 } from "./x87.js";

/** Executes the instruction decoded in slot s; eip already points after it. */
export type Handler = (cpu: Cpu, s: number) => void;

const ud: Handler = (cpu) => cpu.fault(UD, 0);

export const HANDLERS: Handler[] = new Array<Handler>(OP_COUNT).fill(ud);

/**
 * Registers a handler. map: 0 one-byte, 1 for 0F xx. sub: ModRM reg for group opcodes (0
 * otherwise). size: 32 registers the 32-bit operand-size form, 16 the 0x66 form, 0 both.
 */
export function def(map: number, opcode: number, sub: number, size: 0 | 16 | 32, fn: Handler): void {
  if (size !== 16) HANDLERS[opId(map, opcode, sub, false)] = fn;
  if (size !== 32) HANDLERS[opId(map, opcode, sub, true)] = fn;
}

/** Registers fn for all eight sub values of a group opcode. */
export function defGroup(map: number, opcode: number, size: 0 | 16 | 32, fn: Handler): void {
  for (let sub = 0; sub < 8; sub++) def(map, opcode, sub, size, fn);
}

export type Def = typeof def;

registerAlu(def);
registerMove(def);
registerString(def);
registerSystem(def);
registerX87(def);
