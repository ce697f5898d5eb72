import type { Def } from "./table.js";

export function registerMove(_def: Def): void {}
