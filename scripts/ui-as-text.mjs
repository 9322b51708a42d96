// The appliance page's files, script included, are served as they are: an esbuild plugin that loads them as text
// instead of bundling them as code (a global `.js` loader would turn every script into text).
import { readFile } from 'node:fs/promises';

export const uiAsText = {
  name: 'ui-as-text',
  setup(build) {
    build.onLoad({ filter: /[\\/]lib[\\/]appliance[\\/]ui[\\/][^\\/]+\.(html|css|js|svg)$/ }, async (args) => ({
      contents: await readFile(args.path, 'utf8'),
      loader: 'text',
    }));
  },
};
