import type { Def } from "./table.js";

export function registerAlu(_def: Def): void {}
