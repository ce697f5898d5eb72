import type { Def } from "./table.js";

export function registerString(_def: Def): void {}
