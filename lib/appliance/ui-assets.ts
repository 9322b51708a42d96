import appStyle from './ui/app.css';
import appScript from './ui/app.js';
import favicon from './ui/favicon.svg';
import indexHtml from './ui/index.html';

/** A file of the chat page, served as is. */
export interface UiAsset {
  readonly contentType: string;
  readonly body: string;
}

/**
 * The chat page's files by URL path. They are embedded as strings, so the page comes from the attested image itself
 * and needs no file system or CDN: in the appliance bundle through esbuild's `text` loader, applied to the files of
 * `ui/` by an `onLoad` plugin (a global `.js` loader would turn every script into text); under jest through
 * `test/text-transform.js`.
 */
export const UI_ASSETS: ReadonlyMap<string, UiAsset> = new Map([
  ['/', { contentType: 'text/html; charset=utf-8', body: indexHtml }],
  ['/app.js', { contentType: 'text/javascript; charset=utf-8', body: appScript }],
  ['/app.css', { contentType: 'text/css; charset=utf-8', body: appStyle }],
  ['/favicon.svg', { contentType: 'image/svg+xml', body: favicon }],
]);
