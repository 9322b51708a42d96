import type { Plugin } from 'esbuild';

/** Loads the appliance page's files (lib/appliance/ui/) as text. */
export declare const uiAsText: Plugin;
