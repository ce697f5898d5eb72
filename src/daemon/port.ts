/** tsxend's TCP port unless told otherwise (xend's was 8000); xm looks for it there. */
export const DEFAULT_PORT = 8006;
