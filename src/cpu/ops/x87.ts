import type { Def } from "./table.js";

export function registerX87(_def: Def): void {}
